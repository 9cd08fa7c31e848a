"""The run state machine: queued -> in_progress -> completed, failed or canceled. Every status change
of a run goes through `transition`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api import clock
from api.errors import InvalidRequest
from api.tables import EvalRun
from api.webhooks import events as webhook_events

QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"  # one l, as OpenAI spells it
STATUSES = (QUEUED, IN_PROGRESS, COMPLETED, FAILED, CANCELED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})

ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({IN_PROGRESS, FAILED, CANCELED}),
    # Back to queued when its worker is lost (the reconciler) or shuts down.
    IN_PROGRESS: frozenset({COMPLETED, FAILED, CANCELED, QUEUED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
}


class InvalidRunTransition(InvalidRequest):
    code = "invalid_run_status"


def transition(session: Session, run: EvalRun, new_status: str, error: dict[str, str] | None = None) -> None:
    if new_status not in ALLOWED[run.status]:
        raise InvalidRunTransition(f"Run {run.id} is {run.status} and cannot become {new_status}.")
    run.status = new_status
    now = clock.now()
    if new_status == IN_PROGRESS and run.started_at is None:
        run.started_at = now
    if new_status in TERMINAL:
        run.finished_at = now
    if error is not None:
        run.error = error
    if new_status in TERMINAL:
        # Here, the one door of every status change: no way of ending a run can forget its webhooks.
        webhook_events.run_finished(session, run)
