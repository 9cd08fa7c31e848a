"""What grading one sample gives: the reward, each part's, and the errors, in OpenAI's terms.

`GradeErrors` holds the flags of OpenAI's `metadata.errors` (types/fine_tuning/alpha/
grader_run_response.py); a grader that fails on a sample gives reward 0 and says why there, so one
bad sample never stops a run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class GradeErrors(BaseModel):
    formula_parse_error: bool = False
    invalid_variable_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_server_error: bool = False
    model_grader_server_error_details: str | None = None
    other_error: bool = False
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    details: list[str] = Field(default_factory=list, exclude=True)
    """Every error's message, for logs and job events (not one of OpenAI's fields)."""

    def any(self) -> bool:
        return bool(self.details)

    def merge(self, other: GradeErrors) -> None:
        for name, value in other:
            if isinstance(value, bool) and value:
                setattr(self, name, True)
            elif isinstance(value, str) and getattr(self, name) is None:
                setattr(self, name, value)
        self.details.extend(other.details)


class GradeResult(BaseModel):
    name: str
    type: str
    reward: float
    sub_rewards: dict[str, float] = Field(default_factory=dict)
    """A multi grader's parts, by their names."""
    scores: dict[str, Any] = Field(default_factory=dict)
    errors: GradeErrors = Field(default_factory=GradeErrors)
    token_usage: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per judging model: prompt_tokens, completion_tokens, total_tokens."""
    passed: bool | None = None
    """Against pass_threshold, where the grader has one."""
    execution_time: float = 0.0

    def total_tokens(self) -> int | None:
        if not self.token_usage:
            return None
        return sum(usage.get("total_tokens", 0) for usage in self.token_usage.values())
