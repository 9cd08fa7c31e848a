"""Eval runs the queue forgot, rung again: those whose worker died (an expired lease: back to queued, to
grade the items not yet recorded) and queued ones whose message is long overdue. Called by the
reconciler's pass (worker/reconciler.py), as jobs are."""

from __future__ import annotations

from api import queue
from api.db import session_scope
from api.evals import repository
from api.evals.status import QUEUED, transition
from worker.evals.run import out_of_attempts
from worker.runtime import Runtime


def reconcile_runs(rt: Runtime, now: int, grace_seconds: int) -> list[str]:
    """The ids of the runs rung again."""
    ring = []
    with session_scope(rt.sessions) as session:
        for run in repository.with_expired_leases(session, now):
            run.lease_owner = run.lease_expires_at = None
            if out_of_attempts(rt, session, run):
                continue
            transition(session, run, QUEUED)
            run.enqueued_at = now
            ring.append(run.id)
    with session_scope(rt.sessions) as session:
        for run in repository.awaiting_delivery(session, enqueued_before=now - grace_seconds, now=now):
            run.enqueued_at = now
            ring.append(run.id)
    for run_id in ring:
        queue.enqueue(rt.settings, queue.RUN_EVAL, run_id)
    return ring
