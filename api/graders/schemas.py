"""Request and response bodies of /v1/fine_tuning/alpha/graders, as the openai SDK types them
(types/fine_tuning/alpha/grader_run_params.py, grader_run_response.py, grader_validate_*.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.request_models import Strict
from graders import GradeResult


class GraderRunIn(Strict):
    grader: dict[str, Any]
    """One of the grader objects of graders/types.py; read by the service, which names a bad field."""
    model_sample: str
    """The model's answer: `sample.output_text`, and `sample.output_json` when it is JSON."""
    item: Any = None
    """The dataset line: `item`."""


class GraderValidateIn(Strict):
    grader: dict[str, Any]


class GraderValidateOut(BaseModel):
    grader: dict[str, Any]


class RunMetadata(BaseModel):
    name: str
    type: str
    errors: dict[str, Any]
    execution_time: float
    scores: dict[str, Any]
    token_usage: int | None
    sampled_model_name: str | None = None


class GraderRunOut(BaseModel):
    reward: float
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]
    metadata: RunMetadata

    @classmethod
    def of(cls, result: GradeResult) -> GraderRunOut:
        return cls(
            reward=result.reward,
            sub_rewards=dict(result.sub_rewards),
            model_grader_token_usage_per_model=dict(result.token_usage),
            metadata=RunMetadata(
                name=result.name,
                type=result.type,
                errors=result.errors.model_dump(),
                execution_time=result.execution_time,
                scores=result.scores,
                token_usage=result.total_tokens(),
            ),
        )
