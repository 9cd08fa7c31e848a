"""The prompt/completion format: {"prompt": str, "completion": str}.

The trainer reads it as a chat of one user turn and one assistant turn, and learns the completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEYS = ("prompt", "completion")


@dataclass(slots=True, kw_only=True)
class PromptCompletionExample:
    """One line of a prompt/completion file."""

    prompt: str
    """What the model is given; may be empty."""
    completion: str
    """What the model learns to write after it; not blank."""


def read_prompt_completion(value: dict[str, Any]) -> tuple[PromptCompletionExample | None, list[str]]:
    """The example, or None and the problems of the line."""
    problems = []
    for key in KEYS:
        if key not in value:
            problems.append(f"{key} is missing")
        elif not isinstance(value[key], str):
            problems.append(f"{key} must be a string")
    if problems:
        return None, problems
    if not value["completion"].strip():
        return None, ["completion is empty"]
    return PromptCompletionExample(prompt=value["prompt"], completion=value["completion"]), problems
