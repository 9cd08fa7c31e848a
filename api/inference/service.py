"""Which model a request names, and whether the caller may use it: the rules, before any forwarding.

A model is a base model of the store, the fine-tuned model of one of the project's jobs (its artifact
directory), or a checkpoint model the project owns or was given through checkpoint permissions. All
else, another project's models included, is `model_not_found`, as at every other route.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.checkpoints import service as checkpoints
from api.config import Settings
from api.errors import InvalidRequest, model_not_found
from api.fine_tuning import artifacts
from api.fine_tuning import service as jobs
from api.inference.schemas import BackendTarget
from api.models.store import ModelStore
from api.tables import FineTuningJob

Task = Literal["generate", "classify"]
ROUTE_OF_TASK: dict[Task, str] = {"generate": "/v1/chat/completions", "classify": "/v1/classifications"}


@dataclass(frozen=True)
class ServedModel:
    name: str
    """The model as the caller named it; the backend answers under this name."""
    target: BackendTarget
    task: Task


def resolve(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, model: str
) -> ServedModel:
    if store.get(model) is not None:
        return ServedModel(model, BackendTarget(base_model=model), "generate")
    job = jobs.job_of_model(session, caller, model)  # None once the model is deleted
    if job is not None:
        return _tuned(settings, model, job, artifacts.adapter_dir(settings, job.id))
    checkpoint = checkpoints.find_usable_checkpoint(session, caller, model)
    if checkpoint is not None:
        directory = artifacts.checkpoint_dir(settings, checkpoint.job.id, checkpoint.step_number)
        return _tuned(settings, model, checkpoint.job, directory)
    raise model_not_found(model, param="model")


def require_task(served: ServedModel, task: Task) -> None:
    """Chat needs a generating model and classification a classifier: say where the other one goes."""
    if served.task != task:
        kind = "a classification model" if served.task == "classify" else "not a classification model"
        raise InvalidRequest(
            f"The model '{served.name}' is {kind}; use {ROUTE_OF_TASK[served.task]} with it.",
            param="model",
            code="model_not_supported",
        )


def _tuned(settings: Settings, model: str, job: FineTuningJob, directory: Path) -> ServedModel:
    if not artifacts.exists(settings, directory):
        # A model whose files are gone (being deleted, or never stored) can't answer.
        raise model_not_found(model, param="model")
    task: Task = "classify" if jobs.method_task(job) == "SEQ_CLS" else "generate"
    where = artifacts.served_as(settings, directory)
    return ServedModel(model, BackendTarget(base_model=job.model, artifact_dir=where), task)
