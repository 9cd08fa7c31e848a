"""The database is the truth and the broker only a doorbell: ring again for jobs the queue forgot.

Runs in every worker process every TUNERY_RECONCILE_SECONDS (several workers running it at once is
harmless: each step of a job acts only when the row says it is due). It fixes three things:
- a running job whose lease expired (its worker died): back to queued, to resume from its last
  checkpoint, or failed once it has used up its attempts;
- a queued or validating job whose message went out more than GRACE_SECONDS ago (the row's
  enqueued_at) and that no worker leases: its message may be lost (Redis flushed or restarted, a
  broker volume gone), so it gets another. The broker's storage is never read, so this works with
  any broker;
- an eval run whose worker died or whose message is overdue: rung again (worker/evals/reconcile.py);
- the scratch directory of a job that ended without its worker cleaning up (cancelled while
  paused, or its worker died) holds checkpoints that can be gigabytes: removed.
And once every STORAGE_SWEEP_SECONDS, on S3, the objects nothing names (worker/storage_sweep.py).

A message is only a doorbell, so one too many costs a no-op delivery: a job that waits longer than
GRACE_SECONDS for a free worker gets one more message per GRACE_SECONDS, each of which its claim (or
its validation) answers with "nothing to do" once the job has moved on.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

from api import clock, queue
from api.db import session_scope
from api.fine_tuning import repository
from api.fine_tuning.status import QUEUED, TERMINAL, VALIDATING_FILES, transition
from api.webhooks import repository as webhooks
from worker.evals.reconcile import reconcile_runs
from worker.jobs.claim import out_of_attempts
from worker.runtime import Runtime
from worker.storage_sweep import sweep_storage

log = logging.getLogger("tunery.worker.reconciler")

# How long a job's message may wait before the reconciler rings again: longer than a message takes
# from the commit to a free worker, short enough that a lost one costs a user half a minute.
GRACE_SECONDS = 30
# How often a worker looks for objects nothing names (worker/storage_sweep.py): a listing of the bucket.
STORAGE_SWEEP_SECONDS = 3600


def reconcile(rt: Runtime) -> dict[str, list[str]]:
    """One pass; returns what it did, by kind, for logs and tests."""
    done: dict[str, list[str]] = {
        "requeued": [],
        "failed": [],
        "enqueued": [],
        "revalidated": [],
        "swept": [],
        "webhooks": [],
        "eval_runs": [],
    }
    now = clock.now()
    pools: dict[str, str | None] = {}
    with session_scope(rt.sessions) as session:
        for job in repository.with_expired_leases(session, now):
            if out_of_attempts(rt, session, job):
                done["failed"].append(job.id)
            else:
                where = f"step {job.resume_step}" if job.resume_step else "the start"
                transition(
                    session, job, QUEUED, f"Worker lost; the job is queued again to resume from {where}"
                )
                queue.mark_enqueued(job)
                done["requeued"].append(job.id)
                pools[job.id] = job.pool
            job.lease_owner = job.lease_expires_at = None
    with session_scope(rt.sessions) as session:
        waiting = repository.awaiting_delivery(
            session, (QUEUED, VALIDATING_FILES), enqueued_before=now - GRACE_SECONDS, now=now
        )
        for job in waiting:
            queue.mark_enqueued(job)
            done["enqueued" if job.status == QUEUED else "revalidated"].append(job.id)
            pools[job.id] = job.pool
    done["swept"] = _sweep_finished_workdirs(rt)
    done["eval_runs"] = reconcile_runs(rt, now, GRACE_SECONDS)
    with session_scope(rt.sessions, writes=False) as session:
        # Deliveries whose message the broker lost (or that was never sent): ring again.
        done["webhooks"] = webhooks.overdue_deliveries(session, due_before=now - GRACE_SECONDS, now=now)
    for job_id in done["requeued"] + done["enqueued"]:
        # To the job's own pool: only its workers have the GPUs the job was admitted for.
        queue.enqueue(rt.settings, queue.RUN_JOB, job_id, pool=pools.get(job_id))
    for job_id in done["revalidated"]:
        queue.enqueue(rt.settings, queue.VALIDATE_JOB, job_id)
    for delivery_id in done["webhooks"]:
        queue.enqueue(rt.settings, queue.DELIVER_WEBHOOK, delivery_id)
    if any(done.values()):
        log.warning("reconciled: %s", {kind: ids for kind, ids in done.items() if ids})
    return done


def _sweep_finished_workdirs(rt: Runtime) -> list[str]:
    root = rt.settings.jobs_path
    if not root.is_dir():
        return []
    names = [entry.name for entry in root.iterdir() if entry.is_dir()]
    if not names:
        return []
    with session_scope(rt.sessions, writes=False) as session:
        released = repository.ended_and_released(session, names, TERMINAL, clock.now())
    # A directory of a job not (yet) in the database is left alone: it may be one being created. So
    # is one whose worker still holds the job (a cancelled run, its trainer still stopping).
    finished = [name for name in names if name in released]
    for name in finished:
        shutil.rmtree(root / name, ignore_errors=True)
    return finished


def start_loop(rt: Runtime, stop: threading.Event) -> threading.Thread:
    """Reconcile now and then every reconcile_seconds until `stop` is set (a daemon thread)."""

    def loop() -> None:
        next_storage_sweep = time.monotonic() + STORAGE_SWEEP_SECONDS / 10  # not all at a fleet's start
        while True:
            try:
                reconcile(rt)
            except Exception:
                log.exception("reconcile pass failed; trying again next time")
            if time.monotonic() >= next_storage_sweep:
                next_storage_sweep = time.monotonic() + STORAGE_SWEEP_SECONDS
                try:
                    sweep_storage(rt)
                except Exception:
                    log.exception("storage sweep failed; trying again next time")
            if stop.wait(rt.settings.reconcile_seconds):
                return

    thread = threading.Thread(target=loop, name="tunery-reconciler", daemon=True)
    thread.start()
    return thread
