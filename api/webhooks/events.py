"""A job's (or an eval run's) end, owed to its project's endpoints: rows written in the transaction of
the state change, messages sent after it commits (the reconciler sends again for any message the
broker lost)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from api import clock, queue
from api.config import Settings
from api.db import after_commit, settings_of
from api.ids import new_id
from api.tables import EvalRun, FineTuningJob, WebhookDelivery
from api.webhooks import repository

# The job statuses OpenAI sends events for, and the event type of each.
JOB_EVENT_TYPES = {
    "succeeded": "fine_tuning.job.succeeded",
    "failed": "fine_tuning.job.failed",
    "cancelled": "fine_tuning.job.cancelled",
}
# An eval run's: OpenAI spells its end "succeeded" in the event, "completed" in the run's status.
RUN_EVENT_TYPES = {
    "completed": "eval.run.succeeded",
    "failed": "eval.run.failed",
    "canceled": "eval.run.canceled",
}
EVENT_TYPES = (*JOB_EVENT_TYPES.values(), *RUN_EVENT_TYPES.values())


def job_finished(session: Session, job: FineTuningJob) -> list[str]:
    """Queue the event of a job that just reached `job.status` for each endpoint that wants it."""
    event_type = JOB_EVENT_TYPES.get(job.status)
    if event_type is None:
        return []
    return _owed(session, job.project_pk, event_type, job.id, job.pk)


def run_finished(session: Session, run: EvalRun) -> list[str]:
    """Queue the event of an eval run that just reached `run.status`, as job_finished does for jobs."""
    event_type = RUN_EVENT_TYPES.get(run.status)
    if event_type is None:
        return []
    return _owed(session, run.project_pk, event_type, run.id, None)


def _owed(
    session: Session, project_pk: int, event_type: str, object_id: str, job_pk: int | None
) -> list[str]:
    endpoints = [e for e in repository.endpoints_of(session, project_pk) if event_type in e.events]
    if not endpoints:
        return []
    now = clock.now()
    event_id = new_id("evt_")
    payload = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": now,
        "data": {"id": object_id},
    }
    delivery_ids = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(
            id=new_id("whdel_"),
            event_id=event_id,
            event_type=event_type,
            endpoint_pk=endpoint.pk,
            job_pk=job_pk,
            payload=payload,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
        repository.add(session, delivery)
        delivery_ids.append(delivery.id)
    settings = settings_of(session)
    if settings is not None:
        for delivery_id in delivery_ids:
            after_commit(session, _ring(settings, delivery_id))
    return delivery_ids


def _ring(settings: Settings, delivery_id: str) -> Callable[[], None]:
    return lambda: queue.enqueue(settings, queue.DELIVER_WEBHOOK, delivery_id)
