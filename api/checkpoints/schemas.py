"""Checkpoint objects as the openai SDK types them (openai.types.fine_tuning.jobs / .checkpoints)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.request_models import Strict
from api.response_models import OmitsEmptyOptionals
from api.tables import CheckpointPermission, FineTuningCheckpoint


class CheckpointMetrics(OmitsEmptyOptionals):
    # Every metric is optional in OpenAI's spec: a job without a validation file has no valid_*.
    omitted_when_none = (
        "step",
        "train_loss",
        "train_mean_token_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
        "full_valid_loss",
        "full_valid_mean_token_accuracy",
        "train_reward_mean",
        "train_reward_std",
        "valid_reward_mean",
    )

    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    # Reinforcement jobs' (Tunery's addition, as on their metrics events).
    train_reward_mean: float | None = None
    train_reward_std: float | None = None
    valid_reward_mean: float | None = None


class FineTuningJobCheckpointObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int

    @classmethod
    def of(cls, row: FineTuningCheckpoint) -> FineTuningJobCheckpointObject:
        known = {name: row.metrics.get(name) for name in CheckpointMetrics.model_fields}
        return cls(
            id=row.id,
            created_at=row.created_at,
            fine_tuned_model_checkpoint=row.fine_tuned_model_checkpoint,
            fine_tuning_job_id=row.job.id,
            metrics=CheckpointMetrics(**known),
            step_number=row.step_number,
        )


ProjectId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PermissionCreate(Strict):
    project_ids: Annotated[list[ProjectId], Field(min_length=1, max_length=100)]


class CheckpointPermissionObject(BaseModel):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    created_at: int
    project_id: str

    @classmethod
    def of(cls, row: CheckpointPermission) -> CheckpointPermissionObject:
        return cls(id=row.id, created_at=row.created_at, project_id=row.project.id)


class CheckpointPermissionDeleted(BaseModel):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    deleted: bool
