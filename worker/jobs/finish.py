"""The trainer has exited: the job settled by its outcome (outcome.py), in one short transaction."""

from __future__ import annotations

import logging
import shutil

from sqlalchemy.orm import Session

from api import queue
from api.db import session_scope
from api.fine_tuning import repository
from api.fine_tuning.status import FAILED, QUEUED, transition
from api.tables import FineTuningJob
from worker import leases
from worker.jobs.outcome import Ending, Verdict, settle
from worker.jobs.publish import publish
from worker.jobs.stage import workdir
from worker.runtime import Runtime
from worker.supervisor import Action, TrainerExit
from worker.training.progress import Completed, Failed, Stopped

log = logging.getLogger("tunery.worker")


def ending_of(trainer: TrainerExit) -> Ending:
    if trainer.returncode == 0 and isinstance(trainer.final_event, Completed):
        return Ending.COMPLETED
    if isinstance(trainer.final_event, Stopped):
        return Ending.STOPPED
    return Ending.FAILED


def finish(rt: Runtime, job_id: str, trainer: TrainerExit) -> None:
    """Settle the job after its trainer exited, according to what the row says now."""
    final = trainer.final_event
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.lease_owner != rt.worker_id:
            log.warning("job %s: lease lost while training; leaving the job to its new worker", job_id)
            return
        leases.release(job, rt.worker_id)
        outcome = settle(job.status, ending_of(trainer), asked_to_stop=trainer.action is Action.STOP)
        if not outcome.counts_as_attempt:
            job.attempts -= 1  # a pause or a shutdown is not a failed attempt
        verdict = outcome.verdict
        if verdict in (Verdict.SUCCEED, Verdict.SUCCEED_DESPITE_PAUSE):
            assert isinstance(final, Completed)
            if verdict is Verdict.SUCCEED_DESPITE_PAUSE:
                repository.add_event(session, job, "Training finished before the pause took effect")
            publish(rt, session, job, final)
        elif verdict is Verdict.REQUEUE:
            assert isinstance(final, Stopped)
            transition(
                session,
                job,
                QUEUED,
                f"Worker shutting down: checkpoint saved at step {final.step}, job queued again",
            )
        elif verdict is Verdict.FAIL:
            code, message = (
                (final.code, final.message) if isinstance(final, Failed) else ("training_error", "")
            )
            fail(
                session,
                job,
                code,
                message or f"trainer exited with code {trainer.returncode}: {trainer.stderr_tail[-2000:]}",
            )
        elif verdict is Verdict.PAUSED_AT_CHECKPOINT:
            assert isinstance(final, Stopped)
            repository.add_event(session, job, f"Paused at step {final.step}: checkpoint saved")
        elif verdict is Verdict.PAUSED_WITHOUT_CHECKPOINT:
            where = f"step {job.resume_step}" if job.resume_step else "the start"
            repository.add_event(session, job, f"Paused before a checkpoint; resume continues from {where}")
        elif verdict is Verdict.DISCARD:
            repository.add_event(session, job, "Trainer stopped")
    if outcome.requeue:
        queue.enqueue(rt.settings, queue.RUN_JOB, job_id)
    if outcome.clean_up:
        shutil.rmtree(workdir(rt, job_id), ignore_errors=True)


def fail(session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None) -> None:
    job.error = {"code": code, "message": message, "param": param}
    transition(session, job, FAILED, f"Fine-tuning job failed: {message}", level="error")
