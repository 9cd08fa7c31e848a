"""Queries on fine-tuning jobs and their events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import clock
from api.ids import new_id
from api.tables import FineTuningJob, FineTuningJobEvent


def add(session: Session, job: FineTuningJob) -> None:
    session.add(job)
    session.flush()


def get(session: Session, project_pk: int, job_id: str) -> FineTuningJob | None:
    return session.scalar(
        select(FineTuningJob).where(FineTuningJob.id == job_id, FineTuningJob.project_pk == project_pk)
    )


def get_for_update(session: Session, job_id: str) -> FineTuningJob | None:
    """The worker's read: locks the row on Postgres so two workers never act on one job at once."""
    return session.scalar(
        select(FineTuningJob).where(FineTuningJob.id == job_id).with_for_update(of=FineTuningJob)
    )


def page(
    session: Session, project_pk: int, *, after: FineTuningJob | None, limit: int
) -> list[FineTuningJob]:
    """Newest first; one row more than asked, to tell whether more follow."""
    query = select(FineTuningJob).where(FineTuningJob.project_pk == project_pk)
    if after is not None:
        query = query.where(FineTuningJob.pk < after.pk)
    return list(session.scalars(query.order_by(FineTuningJob.pk.desc()).limit(limit + 1)))


def by_fine_tuned_model(session: Session, project_pk: int, model: str) -> FineTuningJob | None:
    return session.scalar(
        select(FineTuningJob).where(
            FineTuningJob.fine_tuned_model == model, FineTuningJob.project_pk == project_pk
        )
    )


def with_fine_tuned_models(session: Session, project_pk: int) -> list[FineTuningJob]:
    query = select(FineTuningJob).where(
        FineTuningJob.project_pk == project_pk, FineTuningJob.fine_tuned_model.is_not(None)
    )
    return list(session.scalars(query.order_by(FineTuningJob.pk)))


def add_event(
    session: Session,
    job: FineTuningJob,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> FineTuningJobEvent:
    event = FineTuningJobEvent(
        id=new_id("ftevent-"),
        job_pk=job.pk,
        created_at=clock.now(),
        level=level,
        type=type,
        message=message,
        data=data,
    )
    session.add(event)
    session.flush()
    return event


def get_event(session: Session, job: FineTuningJob, event_id: str) -> FineTuningJobEvent | None:
    return session.scalar(
        select(FineTuningJobEvent).where(
            FineTuningJobEvent.id == event_id, FineTuningJobEvent.job_pk == job.pk
        )
    )


def events_page(
    session: Session, job: FineTuningJob, *, after: FineTuningJobEvent | None, limit: int
) -> list[FineTuningJobEvent]:
    """Newest first, as OpenAI lists events."""
    query = select(FineTuningJobEvent).where(FineTuningJobEvent.job_pk == job.pk)
    if after is not None:
        query = query.where(FineTuningJobEvent.pk < after.pk)
    return list(session.scalars(query.order_by(FineTuningJobEvent.pk.desc()).limit(limit + 1)))
