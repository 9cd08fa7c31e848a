"""The job state machine. Every status change goes through `transition`, with an event beside it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api import clock
from api.errors import InvalidRequest
from api.fine_tuning import repository
from api.tables import FineTuningJob
from api.webhooks import events as webhook_events

VALIDATING_FILES = "validating_files"
QUEUED = "queued"
RUNNING = "running"
PAUSED = "paused"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

ALLOWED: dict[str, frozenset[str]] = {
    VALIDATING_FILES: frozenset({QUEUED, FAILED, CANCELLED}),
    # A running job goes back to queued when its worker hands it back (shutdown, lost lease).
    # A trainer can finish between a pause (or a pause and a resume) and the moment its worker
    # stops it: the finished work is kept, so paused and queued jobs may still succeed.
    QUEUED: frozenset({RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, PAUSED, QUEUED}),
    PAUSED: frozenset({QUEUED, SUCCEEDED, CANCELLED, FAILED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class InvalidTransition(InvalidRequest):
    code = "invalid_job_status"


def transition(
    session: Session,
    job: FineTuningJob,
    new_status: str,
    message: str,
    *,
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> None:
    if new_status not in ALLOWED[job.status]:
        raise InvalidTransition(f"Job {job.id} is {job.status} and cannot become {new_status}.")
    job.status = new_status
    now = clock.now()
    if new_status == RUNNING and job.started_at is None:
        job.started_at = now
    if new_status in TERMINAL:
        job.finished_at = now
        job.estimated_finish = None
    repository.add_event(session, job, message, level=level, data=data)
    if new_status in TERMINAL:
        # Here, the one door every status change passes: no way of ending a job can forget its webhooks.
        webhook_events.job_finished(session, job)
