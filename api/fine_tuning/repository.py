"""Queries on fine-tuning jobs and their events."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, insert, or_, select
from sqlalchemy.orm import Session

from api import clock
from api.ids import new_id
from api.tables import FineTuningJob, FineTuningJobEvent


def add(session: Session, job: FineTuningJob) -> None:
    session.add(job)
    session.flush()


def scoped(query: Select[Any], scope: int | None) -> Select[Any]:
    """Limit a query on jobs to one project; scope None (an admin across projects) leaves it whole."""
    return query if scope is None else query.where(FineTuningJob.project_pk == scope)


def get(
    session: Session, scope: int | None, job_id: str, *, for_update: bool = False
) -> FineTuningJob | None:
    query = scoped(select(FineTuningJob).where(FineTuningJob.id == job_id), scope)
    if for_update:
        # A user's control and a worker's step on one job wait for each other instead of one
        # overwriting the other's status.
        query = query.with_for_update(of=FineTuningJob)
    return session.scalar(query)


def with_expired_leases(session: Session, now: int) -> list[FineTuningJob]:
    """Running jobs whose worker stopped renewing its lease: locked, skipping rows another holds."""
    query = select(FineTuningJob).where(
        FineTuningJob.status == "running",
        FineTuningJob.lease_expires_at.is_not(None),
        FineTuningJob.lease_expires_at < now,
    )
    return list(session.scalars(query.with_for_update(of=FineTuningJob, skip_locked=True)))


def awaiting_delivery(
    session: Session, statuses: tuple[str, ...], *, enqueued_before: int, now: int
) -> list[FineTuningJob]:
    """Jobs in `statuses` whose newest message went out before `enqueued_before` (or is not recorded)
    and that no worker holds a live lease on: locked, skipping rows another transaction holds."""
    query = select(FineTuningJob).where(
        FineTuningJob.status.in_(statuses),
        or_(FineTuningJob.enqueued_at.is_(None), FineTuningJob.enqueued_at < enqueued_before),
        or_(FineTuningJob.lease_expires_at.is_(None), FineTuningJob.lease_expires_at <= now),
    )
    query = query.order_by(FineTuningJob.pk).with_for_update(of=FineTuningJob, skip_locked=True)
    return list(session.scalars(query))


def statuses_of(session: Session, job_ids: list[str]) -> dict[str, str]:
    rows = session.execute(
        select(FineTuningJob.id, FineTuningJob.status).where(FineTuningJob.id.in_(job_ids))
    )
    return {job_id: status for job_id, status in rows}


def ended_and_released(session: Session, job_ids: list[str], ended: Collection[str], now: int) -> set[str]:
    """Those of `job_ids` in an `ended` status that no worker holds any more: a cancelled job is
    ended at once, while its worker still stops its trainer in the job's directory under its lease."""
    rows = session.execute(
        select(FineTuningJob.id).where(
            FineTuningJob.id.in_(job_ids),
            FineTuningJob.status.in_(ended),
            or_(FineTuningJob.lease_expires_at.is_(None), FineTuningJob.lease_expires_at <= now),
        )
    )
    return {job_id for (job_id,) in rows}


def with_live_models(session: Session, job_ids: list[str]) -> set[str]:
    """Those of `job_ids` whose fine-tuned model stands (made, and not deleted)."""
    rows = session.scalars(
        select(FineTuningJob.id).where(
            FineTuningJob.id.in_(job_ids),
            FineTuningJob.fine_tuned_model.is_not(None),
            FineTuningJob.model_deleted_at.is_(None),
        )
    )
    return set(rows)


def by_idempotency_key(session: Session, project_pk: int, key: str) -> FineTuningJob | None:
    return session.scalar(
        select(FineTuningJob).where(
            FineTuningJob.project_pk == project_pk, FineTuningJob.idempotency_key == key
        )
    )


def get_for_update(session: Session, job_id: str) -> FineTuningJob | None:
    """The worker's read: locks the row on Postgres so two workers never act on one job at once."""
    return session.scalar(
        select(FineTuningJob).where(FineTuningJob.id == job_id).with_for_update(of=FineTuningJob)
    )


def page(
    session: Session,
    scope: int | None,
    *,
    after: FineTuningJob | None,
    limit: int,
    metadata: dict[str, str] | None = None,
) -> list[FineTuningJob]:
    """Newest first; one row more than asked, to tell whether more follow."""
    query = scoped(select(FineTuningJob), scope)
    for key, value in (metadata or {}).items():
        # json_extract on SQLite, ->> on Postgres: the same expression on both.
        query = query.where(FineTuningJob.job_metadata[key].as_string() == value)
    if after is not None:
        query = query.where(FineTuningJob.pk < after.pk)
    return list(session.scalars(query.order_by(FineTuningJob.pk.desc()).limit(limit + 1)))


def by_fine_tuned_model(session: Session, scope: int | None, model: str) -> FineTuningJob | None:
    """The job whose fine-tuned model this is, while the model exists (not deleted)."""
    query = select(FineTuningJob).where(
        FineTuningJob.fine_tuned_model == model, FineTuningJob.model_deleted_at.is_(None)
    )
    return session.scalar(scoped(query, scope))


def with_fine_tuned_models(session: Session, scope: int | None) -> list[FineTuningJob]:
    query = select(FineTuningJob).where(
        FineTuningJob.fine_tuned_model.is_not(None), FineTuningJob.model_deleted_at.is_(None)
    )
    return list(session.scalars(scoped(query, scope).order_by(FineTuningJob.pk)))


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


def add_events(session: Session, job: FineTuningJob, messages: list[str]) -> None:
    """Several info messages as one executemany INSERT, in order (their rows are not needed back)."""
    now = clock.now()
    rows = [
        {
            "id": new_id("ftevent-"),
            "job_pk": job.pk,
            "created_at": now,
            "level": "info",
            "type": "message",
            "message": m,
        }
        for m in messages
    ]
    session.execute(insert(FineTuningJobEvent), rows)


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
