"""Evals the tests share: OpenAI's documented grader examples (tests/support/openai_graders.py) as
testing criteria, each with items whose documented results are known, and waiting for a run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from openai import OpenAI

from tests.support.openai_graders import GUIDE_MULTI, GUIDE_PYTHON, GUIDE_STRING_CHECK, REFERENCE_EXAMPLE

TERMINAL = ("completed", "failed", "canceled")
LABEL_SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def custom(item_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "custom", "item_schema": item_schema or {"type": "object"}, "include_sample_schema": True}


def row(item: dict[str, Any], output_text: str) -> dict[str, Any]:
    return {"item": item, "sample": {"output_text": output_text}}


# name -> (testing criterion, item schema, rows, the status each row's output item gets)
DOCUMENTED: dict[str, tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]], list[str]]] = {
    "string_check": (
        GUIDE_STRING_CHECK,
        LABEL_SCHEMA,
        [row({"label": "positive"}, "positive"), row({"label": "positive"}, "negative")],
        ["pass", "fail"],
    ),
    "reference_example": (REFERENCE_EXAMPLE, None, [row({}, "anything")], ["fail"]),
    "python": (
        {**GUIDE_PYTHON, "pass_threshold": 0.99},
        None,
        [row({"reference_answer": "Paris"}, "Paris"), row({"reference_answer": "Paris"}, "Paris, France")],
        ["pass", "fail"],
    ),
    "multi": (
        GUIDE_MULTI,
        None,
        [
            row(
                {"name": "Jane Doe", "email": "jane@example.com"},
                json.dumps({"name": "Jane Doe", "email": "jane@example.com"}),
            ),
            row(
                {"name": "Jane Doe", "email": "other@example.com"},
                json.dumps({"name": "Jane Doe", "email": "jane@example.com"}),
            ),
        ],
        ["pass", "fail"],
    ),
    "text_similarity": (
        {
            "type": "text_similarity",
            "name": "similar",
            "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}",
            "evaluation_metric": "fuzzy_match",
            "pass_threshold": 0.9,
        },
        None,
        [
            row({"reference": "the cat sat on the mat"}, "the cat sat on the mat"),
            row({"reference": "the cat sat on the mat"}, "a dog"),
        ],
        ["pass", "fail"],
    ),
}


def wait_for_run(
    client: OpenAI, eval_id: str, run_id: str, timeout: float = 120, log: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        if run.status in TERMINAL:
            return run
        time.sleep(0.3)
    raise AssertionError(
        f"run {run_id} did not finish in {timeout}s ({run.status}, {run.result_counts}):\n{log()}"
    )
