"""The dashboard's own queries: every project's jobs, filtered, and what one job's page shows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from api.tables import ApiKey, FineTuningCheckpoint, FineTuningJob, FineTuningJobEvent, Project


def jobs(
    session: Session,
    *,
    status: str | None,
    project: str | None,
    model: str | None,
    method: str | None,
    search: str | None,
    limit: int,
) -> list[FineTuningJob]:
    query = select(FineTuningJob)
    if status:
        query = query.where(FineTuningJob.status == status)
    if project:
        query = query.join(Project).where(or_(Project.id == project, Project.name == project))
    if model:
        query = query.where(FineTuningJob.model == model)
    if search:
        pattern = f"%{search.strip()}%"
        query = query.where(or_(FineTuningJob.id.like(pattern), FineTuningJob.suffix.like(pattern)))
    rows = list(
        session.scalars(query.order_by(FineTuningJob.pk.desc()).limit(limit if not method else limit * 5))
    )
    if method:  # the method lives in JSON, read alike on both databases by filtering here
        rows = [job for job in rows if (job.method or {}).get("type") == method][:limit]
    return rows


def distinct_models(session: Session) -> list[str]:
    return list(session.scalars(select(FineTuningJob.model).distinct().order_by(FineTuningJob.model)))


def job(session: Session, job_id: str) -> FineTuningJob | None:
    return session.scalar(select(FineTuningJob).where(FineTuningJob.id == job_id))


def metrics_events(session: Session, job_pk: int, limit: int = 5000) -> list[dict[str, Any]]:
    query = (
        select(FineTuningJobEvent.data)
        .where(FineTuningJobEvent.job_pk == job_pk, FineTuningJobEvent.type == "metrics")
        .order_by(FineTuningJobEvent.pk)
        .limit(limit)
    )
    return [data for data in session.scalars(query) if data]


def newest_metrics(session: Session, job_pk: int) -> dict[str, Any] | None:
    query = (
        select(FineTuningJobEvent.data)
        .where(FineTuningJobEvent.job_pk == job_pk, FineTuningJobEvent.type == "metrics")
        .order_by(FineTuningJobEvent.pk.desc())
        .limit(1)
    )
    return session.scalar(query)


def messages(session: Session, job_pk: int, limit: int = 300) -> list[FineTuningJobEvent]:
    """The job's non-metrics events, oldest first (the newest `limit`)."""
    query = (
        select(FineTuningJobEvent)
        .where(FineTuningJobEvent.job_pk == job_pk, FineTuningJobEvent.type != "metrics")
        .order_by(FineTuningJobEvent.pk.desc())
        .limit(limit)
    )
    return list(reversed(session.scalars(query).all()))


def checkpoints(session: Session, job_pk: int) -> list[FineTuningCheckpoint]:
    query = select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_pk == job_pk)
    return list(session.scalars(query.order_by(FineTuningCheckpoint.step_number)))


def oldest_waiting(session: Session, status: str) -> FineTuningJob | None:
    since = func.coalesce(FineTuningJob.enqueued_at, FineTuningJob.created_at)
    query = select(FineTuningJob).where(FineTuningJob.status == status).order_by(since, FineTuningJob.pk)
    return session.scalars(query.limit(1)).first()


def fine_tuned(session: Session) -> list[FineTuningJob]:
    query = select(FineTuningJob).where(
        FineTuningJob.fine_tuned_model.is_not(None), FineTuningJob.model_deleted_at.is_(None)
    )
    return list(session.scalars(query.order_by(FineTuningJob.pk.desc())))


def projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.pk)))


def keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.pk)))
