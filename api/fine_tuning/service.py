"""Creating, reading and listing fine-tuning jobs. Validation and training happen in the worker."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.orm import Session

from api import clock
from api.errors import InvalidRequest, NotFound
from api.files import repository as files
from api.fine_tuning import repository
from api.fine_tuning.schemas import HyperparametersIn, JobCreate, LoraRecipeIn
from api.fine_tuning.status import VALIDATING_FILES
from api.ids import new_id
from api.models.service import model_not_found
from api.models.store import ModelStore
from api.tables import FineTuningJob, FineTuningJobEvent, Project

SUPPORTED_METHODS = ("supervised",)


def create_job(session: Session, store: ModelStore, project: Project, request: JobCreate) -> FineTuningJob:
    method_type, hyperparameters = _method_and_hyperparameters(request)
    if store.get(request.model) is None:
        raise model_not_found(request.model, param="model")
    _check_file(session, project, request.training_file, "training_file")
    if request.validation_file:
        _check_file(session, project, request.validation_file, "validation_file")
    recipe = request.recipe or LoraRecipeIn()
    job = FineTuningJob(
        id=new_id("ftjob-"),
        project_pk=project.pk,
        model=request.model,
        training_file=request.training_file,
        validation_file=request.validation_file,
        status=VALIDATING_FILES,
        hyperparameters=hyperparameters.model_dump(),
        method={"type": method_type},
        recipe=recipe.model_dump(),
        seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
        suffix=request.suffix,
        job_metadata=request.metadata,
        integrations=request.integrations,
        result_files=[],
        created_at=clock.now(),
    )
    repository.add(session, job)
    repository.add_event(session, job, f"Created fine-tuning job: {job.id}")
    repository.add_event(session, job, f"Validating training file: {job.training_file}")
    return job


def get_job(session: Session, project: Project, job_id: str) -> FineTuningJob:
    job = repository.get(session, project.pk, job_id)
    if job is None:
        raise NotFound(f"No fine-tuning job found with id {job_id}", param="fine_tuning_job_id")
    return job


def list_jobs(
    session: Session, project: Project, *, after: str | None, limit: int
) -> tuple[list[FineTuningJob], bool]:
    cursor = get_job(session, project, after) if after else None
    rows = repository.page(session, project.pk, after=cursor, limit=limit)
    return rows[:limit], len(rows) > limit


def list_events(
    session: Session, project: Project, job_id: str, *, after: str | None, limit: int
) -> tuple[list[FineTuningJobEvent], bool]:
    job = get_job(session, project, job_id)
    cursor = None
    if after:
        cursor = repository.get_event(session, job, after)
        if cursor is None:
            raise NotFound(f"No event {after} in fine-tuning job {job_id}", param="after")
    rows = repository.events_page(session, job, after=cursor, limit=limit)
    return rows[:limit], len(rows) > limit


def fine_tuned_model_name(job: FineTuningJob) -> str:
    """OpenAI's form: ft:{base}:{organization}:{suffix}:{id}, the suffix segment empty when absent."""
    return f"ft:{job.model}:{job.project.name}:{job.suffix or ''}:{job.id[-8:]}"


def _method_and_hyperparameters(request: JobCreate) -> tuple[str, HyperparametersIn]:
    method = request.method
    if method is None:
        return "supervised", request.hyperparameters or HyperparametersIn()
    if method.type not in SUPPORTED_METHODS:
        raise InvalidRequest(
            f"method.type {method.type!r} is not supported; supported: {', '.join(SUPPORTED_METHODS)}",
            param="method.type",
        )
    given: Any = method.supervised.hyperparameters if method.supervised else None
    if given is not None and request.hyperparameters is not None:
        raise InvalidRequest(
            "Give hyperparameters either in method.supervised.hyperparameters or in the legacy top-level "
            "hyperparameters, not both.",
            param="hyperparameters",
        )
    return method.type, given or request.hyperparameters or HyperparametersIn()


def _check_file(session: Session, project: Project, file_id: str, param: str) -> None:
    row = files.get(session, project.pk, file_id)
    if row is None:
        raise InvalidRequest(f"invalid {param}: no such file {file_id}", param=param, code="file_not_found")
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"invalid {param}: file {file_id} has purpose {row.purpose!r}, not 'fine-tune'",
            param=param,
            code="invalid_file_purpose",
        )
