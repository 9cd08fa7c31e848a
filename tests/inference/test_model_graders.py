"""score_model and label_model graders judged by a model Tunery serves: graders.run through the SDK
against real `tunery api`, `tunery worker` and `tunery inference` processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import wait_for_terminal
from tests.inference.test_chat_with_openai_sdk import backend, service  # noqa: F401
from tests.support.processes import LiveService
from tests.support.tiny_model import write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
JUDGE_INPUT = [{"role": "user", "content": "Is {{sample.output_text}} the colour of a {{item.fruit}}?"}]


def test_judges_answer_through_the_inference_backend(service: LiveService) -> None:  # noqa: F811
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    graders = client.fine_tuning.alpha.graders
    score = graders.run(
        grader={
            "type": "score_model",
            "name": "judge",
            "model": TINY_MODEL,
            "input": JUDGE_INPUT,  # type: ignore[arg-type]
            "range": [0, 10],
            "sampling_params": {"max_completions_tokens": 4, "seed": 1},
        },
        model_sample="red",
        item={"fruit": "apple"},
    )
    label = graders.run(
        grader={
            "type": "label_model",
            "name": "judge",
            "model": TINY_MODEL,
            "input": JUDGE_INPUT,  # type: ignore[arg-type]
            "labels": ["yes", "no"],
            "passing_labels": ["yes"],
        },
        model_sample="red",
        item={"fruit": "apple"},
    )
    for answer in (score, label):
        errors = answer.metadata.errors
        # The random tiny model answers, though rarely with a number or a label: the judge was reached.
        assert not errors.api_model_grader_server_error, errors.api_model_grader_server_error_details
        usage = answer.api_model_grader_token_usage_per_model[TINY_MODEL]
        assert isinstance(usage, dict) and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert (0.0 <= answer.reward <= 10.0) and (
            answer.reward == 0.0 or not errors.api_model_grader_parse_error
        )


def test_a_reinforcement_job_is_rewarded_by_a_judge_the_inference_backend_serves(
    service: LiveService,  # noqa: F811
    tmp_path: Path,
) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    line = {"messages": [{"role": "user", "content": "What colour is an apple?"}], "fruit": "apple"}
    prompts = client.files.create(
        file=write_jsonl(tmp_path / "p.jsonl", [line] * 10).open("rb"), purpose="fine-tune"
    )
    grader = {
        "type": "score_model",
        "name": "judge",
        "model": TINY_MODEL,
        "input": JUDGE_INPUT,
        "range": [0, 10],
        "sampling_params": {"max_completions_tokens": 4, "seed": 1},
    }
    hyperparameters = {"n_epochs": 1, "batch_size": 5, "compute_multiplier": 0.5}
    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=prompts.id,
        method={
            "type": "reinforcement",
            "reinforcement": {"grader": grader, "hyperparameters": hyperparameters},
        },  # type: ignore[typeddict-item]
    )
    job, _ = wait_for_terminal(client, created.id, service, timeout=600)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert len([event for event in events if event.type == "metrics"]) == 2
    # The trainer reached the judge at the endpoint the worker resolved: no answer failed for want of it.
    unreached = [e.message for e in events if "does not answer" in e.message or "answered 4" in e.message]
    assert not unreached, unreached
