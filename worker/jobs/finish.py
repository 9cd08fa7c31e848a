"""The trainer has exited: the job settled by its outcome (outcome.py).

The file work comes first: a completed run's model is moved into place and its result file staged
before the row is locked. The short transaction after it decides (the row may have been cancelled
meanwhile) and records; what turned out not to be wanted is removed after the commit.
"""

from __future__ import annotations

import logging
import shutil

from sqlalchemy.orm import Session

from api import queue
from api.db import session_scope
from api.evals import fine_tuning as evals
from api.files import service as files_service
from api.fine_tuning import repository
from api.fine_tuning.status import FAILED, QUEUED, transition
from api.storage import store_of
from api.storage.s3 import STORE_ERRORS
from api.tables import FineTuningJob
from worker import leases
from worker.jobs import publish
from worker.jobs.outcome import Ending, Outcome, Verdict, settle
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
    ending = ending_of(trainer)
    prepared: publish.PreparedModel | None = None
    storing_failed = ""
    completed = isinstance(trainer.final_event, Completed) and ending is Ending.COMPLETED
    if completed and (project_pk := _project_if_ours(rt, job_id)) is not None:
        assert isinstance(trainer.final_event, Completed)
        try:
            prepared = publish.prepare(rt, job_id, project_pk, trainer.final_event)
        except STORE_ERRORS as error:  # a full disk, a bucket that refuses: the job fails saying so
            log.exception("job %s: storing the trained model failed", job_id)
            ending, storing_failed = Ending.FAILED, f"storing the trained model failed: {error}"
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.lease_owner != rt.worker_id:
            log.warning("job %s: lease lost while training; leaving the job to its new worker", job_id)
            outcome = None
            pool = None
        else:
            pool = job.pool
            leases.release(job, rt.worker_id)
            outcome = settle(job.status, ending, asked_to_stop=trainer.action is Action.STOP)
            _record(rt, session, job, outcome, trainer, prepared, storing_failed)
    published = outcome is not None and outcome.verdict in (Verdict.SUCCEED, Verdict.SUCCEED_DESPITE_PAUSE)
    if prepared is not None and not published:
        if outcome is None:
            # the artifact may be the new worker's now
            files_service.withdraw_result(rt.file_storage, prepared.result_file)
        else:
            publish.withdraw(rt, job_id, prepared)
    if outcome is not None and outcome.requeue:
        queue.enqueue(rt.settings, queue.RUN_JOB, job_id, pool=pool)
    if outcome is not None and outcome.clean_up:
        shutil.rmtree(workdir(rt, job_id), ignore_errors=True)
        if (store := store_of(rt.settings)).remote:  # its resumable checkpoints in the bucket
            store.delete_prefix(f"jobs/{job_id}/")


def _record(
    rt: Runtime,
    session: Session,
    job: FineTuningJob,
    outcome: Outcome,
    trainer: TrainerExit,
    prepared: publish.PreparedModel | None,
    storing_failed: str,
) -> None:
    final = trainer.final_event
    if not outcome.counts_as_attempt:
        job.attempts -= 1  # a pause or a shutdown is not a failed attempt
    verdict = outcome.verdict
    if verdict in (Verdict.SUCCEED, Verdict.SUCCEED_DESPITE_PAUSE):
        assert prepared is not None
        if verdict is Verdict.SUCCEED_DESPITE_PAUSE:
            repository.add_event(session, job, "Training finished before the pause took effect")
        publish.publish(rt, session, job, prepared)
        evals.start_runs(session, rt.settings, rt.model_store, job)
    elif verdict is Verdict.REQUEUE:
        assert isinstance(final, Stopped)
        transition(
            session,
            job,
            QUEUED,
            f"Worker shutting down: checkpoint saved at step {final.step}, job queued again",
        )
        queue.mark_enqueued(job)
    elif verdict is Verdict.FAIL:
        code, message = (final.code, final.message) if isinstance(final, Failed) else ("training_error", "")
        message = message or storing_failed
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


def _project_if_ours(rt: Runtime, job_id: str) -> int | None:
    """The job's project while this worker still holds the job's lease (only then is its model worth
    storing); None otherwise."""
    with session_scope(rt.sessions, writes=False) as session:
        job = repository.get(session, None, job_id)
        return job.project_pk if job is not None and job.lease_owner == rt.worker_id else None


def fail(session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None) -> None:
    job.error = {"code": code, "message": message, "param": param}
    transition(session, job, FAILED, f"Fine-tuning job failed: {message}", level="error")
