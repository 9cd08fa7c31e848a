"""Claiming a queued job: its lease taken and its status running, or the reason it is not ours."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from api import queue
from api.db import session_scope
from api.fine_tuning import repository
from api.fine_tuning.status import QUEUED, RUNNING, transition
from api.tables import FineTuningJob
from worker import leases
from worker.jobs.finish import fail
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker")


def claim(rt: Runtime, job_id: str) -> bool:
    """Take the job's lease and mark it running; False when the job is not ours to run now."""
    retry_in: int | None = None
    pool: str | None = None
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != QUEUED:
            log.info("run %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return False
        if leases.is_held_by_other(job, rt.worker_id):
            # Its previous run is still stopping (a quick pause then resume): try again after it.
            retry_in = leases.seconds_left(job) + 1
            pool = job.pool
            queue.mark_enqueued(job, countdown=retry_in)
        elif out_of_attempts(rt, session, job):
            return False
        else:
            job.attempts += 1
            leases.take(job, rt.worker_id, rt.settings.lease_seconds)
            message = "Fine-tuning job started"
            if job.resume_from and job.resume_step:
                message = f"Fine-tuning job resumed from the checkpoint at step {job.resume_step}"
            if job.attempts > 1:
                message += f" (attempt {job.attempts} of {rt.settings.max_attempts})"
            transition(session, job, RUNNING, message, data={"worker": rt.worker_id})
            return True
    log.info("run %s: its last run still holds the lease; retrying in %s s", job_id, retry_in)
    queue.enqueue(rt.settings, queue.RUN_JOB, job_id, countdown=retry_in, pool=pool)
    return False


def out_of_attempts(rt: Runtime, session: Session, job: FineTuningJob) -> bool:
    """Fail a job whose runs were cut short TUNERY_MAX_ATTEMPTS times, instead of retrying forever."""
    if job.attempts < rt.settings.max_attempts:
        return False
    message = f"The job's worker was lost {job.attempts} times (TUNERY_MAX_ATTEMPTS); it is not retried."
    fail(session, job, "too_many_attempts", message)
    return True
