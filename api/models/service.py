"""Models a project can use: the shared base models, and the fine-tuned models of its own jobs."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import NotFound
from api.fine_tuning import repository as jobs
from api.models.schemas import ModelObject
from api.models.store import ModelStore
from api.tables import Project

BASE_OWNER = "tunery"


def list_models(session: Session, store: ModelStore, project: Project) -> list[ModelObject]:
    base = [ModelObject(id=m.id, created=m.created, owned_by=BASE_OWNER) for m in store.list()]
    tuned = [
        ModelObject(id=job.fine_tuned_model, created=job.finished_at or job.created_at, owned_by=project.id)
        for job in jobs.with_fine_tuned_models(session, project.pk)
        if job.fine_tuned_model
    ]
    return base + tuned


def get_model(session: Session, store: ModelStore, project: Project, model_id: str) -> ModelObject:
    entry = store.get(model_id)
    if entry is not None:
        return ModelObject(id=entry.id, created=entry.created, owned_by=BASE_OWNER)
    job = jobs.by_fine_tuned_model(session, project.pk, model_id)
    if job is None:
        raise model_not_found(model_id)
    return ModelObject(id=model_id, created=job.finished_at or job.created_at, owned_by=project.id)


def model_not_found(model_id: str, param: str | None = None) -> NotFound:
    return NotFound(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        param=param,
        code="model_not_found",
    )
