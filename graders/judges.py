"""score_model and label_model: a model served by Tunery reads the rendered messages and answers.

The graders library knows no HTTP route and no database: it is given a `Judge`, a function that
sends chat messages to a named model and returns its text and token usage. The API's judge resolves
the model in the caller's project and asks Tunery's inference backend (api/graders/judge.py).

OpenAI's judges answer through structured outputs; Tunery's open models are asked in the system
message for a bare number (score_model) or one label (label_model), and the answer is read leniently:
the first number in it, or the label it names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graders.templates import render
from graders.types import GraderMessage, LabelModelGrader, ScoreModelGrader


@dataclass(frozen=True)
class JudgeAnswer:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    """Why the model stopped ("stop", "length"): evals record it with each generated sample."""


Judge = Callable[[str, list[dict[str, str]], dict[str, Any]], JudgeAnswer]
"""(model, messages, sampling) -> the answer. Raises JudgeFailed when the model can't answer."""


class JudgeFailed(RuntimeError):
    pass


class JudgeUnreadable(ValueError):
    """The judge answered, but not with a number or label."""


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def messages(grader_input: list[GraderMessage], namespaces: dict[str, Any]) -> list[dict[str, str]]:
    rendered = []
    for message in grader_input:
        parts = message.content if isinstance(message.content, list) else [message.content]
        text = "\n".join(part if isinstance(part, str) else part.text for part in parts)
        rendered.append(
            {
                "role": "system" if message.role == "developer" else message.role,
                # A sampled answer can hold NUL (a random model says it); the chat route refuses NUL
                # as every request body does, so the judge would fail on the sample, not judge it.
                "content": render(text, namespaces).replace("\x00", "\ufffd"),
            }
        )
    return rendered


def score_prompt(grader: ScoreModelGrader) -> dict[str, str]:
    low, high = grader.score_range()
    return {
        "role": "system",
        "content": f"Answer with one number from {low:g} to {high:g}, the score, and nothing else.",
    }


def label_prompt(grader: LabelModelGrader) -> dict[str, str]:
    return {
        "role": "system",
        "content": "Answer with exactly one of these labels and nothing else: " + ", ".join(grader.labels),
    }


def read_score(text: str, grader: ScoreModelGrader) -> float:
    match = _NUMBER.search(text)
    if match is None:
        raise JudgeUnreadable(f"the judge's answer holds no number: {text[:200]!r}")
    low, high = grader.score_range()
    return min(high, max(low, float(match.group())))


def read_label(text: str, grader: LabelModelGrader) -> str:
    answer = text.strip().strip(".\"'` ").lower()
    for label in grader.labels:
        if answer == label.lower():
            return label
    named = [label for label in grader.labels if re.search(rf"\b{re.escape(label.lower())}\b", answer)]
    if len(named) == 1:
        return named[0]
    raise JudgeUnreadable(f"the judge's answer names none of {grader.labels} (or several): {text[:200]!r}")


def sampling(grader: ScoreModelGrader | LabelModelGrader) -> dict[str, Any]:
    params = getattr(grader, "sampling_params", None)
    chosen: dict[str, Any] = {"temperature": 0.0, "max_tokens": 16}
    if params is not None:
        if params.max_completions_tokens is not None:
            chosen["max_tokens"] = params.max_completions_tokens
        for name in ("temperature", "top_p", "seed"):
            if getattr(params, name) is not None:
                chosen[name] = getattr(params, name)
    return chosen
