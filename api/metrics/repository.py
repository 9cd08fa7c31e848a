"""The queries behind the scrape-time gauges: the database is the truth about jobs, queues and workers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.tables import FineTuningJob, FineTuningJobEvent, WebhookDelivery


def jobs_by_status(session: Session) -> dict[str, int]:
    query = select(FineTuningJob.status, func.count()).group_by(FineTuningJob.status)
    return {status: count for status, count in session.execute(query).all()}


def waiting_jobs(session: Session, status: str) -> tuple[int, int | None]:
    """How many jobs are in `status`, and since when the oldest one waits (its newest enqueue, or
    its creation)."""
    since = func.coalesce(FineTuningJob.enqueued_at, FineTuningJob.created_at)
    query = select(func.count(), func.min(since)).where(FineTuningJob.status == status)
    count, oldest = session.execute(query).one()
    return int(count), oldest


def pending_deliveries(session: Session) -> tuple[int, int | None]:
    query = select(func.count(), func.min(WebhookDelivery.created_at)).where(
        WebhookDelivery.next_attempt_at.is_not(None)
    )
    count, oldest = session.execute(query).one()
    return int(count), oldest


def running_jobs(session: Session) -> list[FineTuningJob]:
    return list(session.scalars(select(FineTuningJob).where(FineTuningJob.status == "running")))


def newest_metrics(session: Session, job_pk: int, count: int = 2) -> list[tuple[int, dict[str, Any]]]:
    """The job's newest `count` metrics events, newest first: (created_at, data)."""
    query = (
        select(FineTuningJobEvent.created_at, FineTuningJobEvent.data)
        .where(FineTuningJobEvent.job_pk == job_pk, FineTuningJobEvent.type == "metrics")
        .order_by(FineTuningJobEvent.pk.desc())
        .limit(count)
    )
    return [(created_at, data or {}) for created_at, data in session.execute(query).all()]
