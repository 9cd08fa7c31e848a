"""Each line the trainer writes, recorded on the job as it comes: events, metrics, the estimate of the
finish, checkpoints and where a stopped run would resume.

Each line is one short transaction, so the API shows progress live, and no transaction here waits on
files: a checkpoint's directory is moved into place before its row is written.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from api import clock
from api.db import session_scope
from api.fine_tuning import artifacts, repository
from api.storage import store_of
from api.storage.directories import put_directory
from api.storage.s3 import STORE_ERRORS
from worker.jobs.publish import store_checkpoint
from worker.jobs.stage import workdir
from worker.runtime import Runtime
from worker.supervisor import UnreadableLine
from worker.training.progress import Checkpoint, Message, Metrics, Resumable, Started, Stopped, TrainerEvent
from worker.training.spec import TrainingSpec

log = logging.getLogger("tunery.worker")


def record(rt: Runtime, job_id: str, event: TrainerEvent | UnreadableLine, started: int) -> None:
    """Record one trainer line; `started` is when the run began (unix seconds), for the estimate."""
    if isinstance(event, Checkpoint):
        store_checkpoint(rt, job_id, event)  # its files first, then its own short transaction
        return
    if isinstance(event, Resumable | Stopped) and not upload_resumable(rt, job_id, event):
        # Not whole, or not in the bucket: the job keeps the resume point it had, and this one is
        # of no use.
        unnamed = resume_point(event)
        remove_local(rt, job_id, [unnamed] if unnamed else [])
        return
    replaced: list[str] = []
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None:
            return
        if isinstance(event, Metrics):
            step, total, loss = event.step, event.total_steps, event.train_loss
            message = f"Step {step}/{total}" + (f": training loss={loss:.4f}" if loss is not None else "")
            repository.add_event(session, job, message, type="metrics", data=asdict(event))
            first = job.resume_step or 0
            if step > first:
                elapsed = clock.now() - started
                job.estimated_finish = clock.now() + int(elapsed * (total - step) / (step - first))
        elif isinstance(event, Started):
            repository.add_event(
                session,
                job,
                f"Training {event.trainable_params} of {event.total_params} parameters "
                f"for {event.total_steps} steps",
                data=asdict(event),
            )
        elif isinstance(event, Resumable | Stopped):
            path = resume_point(event)
            if path is not None:
                resume_from = os.path.relpath(path, workdir(rt, job_id))
                if job.resume_from and job.resume_from != resume_from:
                    replaced.append(job.resume_from)
                job.resume_from = resume_from
                job.resume_step = event.step
        elif isinstance(event, Message):
            repository.add_event(session, job, event.message, level=event.level)
        elif isinstance(event, UnreadableLine):
            # A trainer and a worker that disagree on the protocol: say so where someone will look.
            repository.add_event(
                session,
                job,
                f"The trainer wrote a line the worker cannot read ({event.problem}): {event.line[:500]}",
                level="warn",
            )
    remove_replaced(rt, job_id, replaced)


def resume_point(event: Resumable | Stopped) -> str | None:
    """The resumable checkpoint a `resumable` or `stopped` line names (a stop may name none)."""
    return event.path if isinstance(event, Resumable) else event.resume_from


def upload_resumable(rt: Runtime, job_id: str, event: Resumable | Stopped) -> bool:
    """On S3, put the trainer's resumable checkpoint in the bucket before the row names it, so a job
    whose worker is lost resumes on another (worker/jobs/stage.py downloads it). False if that failed
    (the trainer rotated it away meanwhile, the bucket refused): the row keeps its older one."""
    path = resume_point(event)
    if path is None:
        return True
    # A trainer that runs ahead of this worker rotates a checkpoint away (it keeps the newest two)
    # before its line is read here. Naming it would send the job back to the start when it resumes.
    if not _complete(Path(path)):
        log.warning(
            "job %s: the checkpoint at %s was gone before it was stored; keeping the previous one",
            job_id,
            path,
        )
        return False
    store = store_of(rt.settings)
    if not store.remote:
        return True
    try:
        put_directory(store, artifacts.key_of(rt.settings, Path(path).resolve()), Path(path))
    except STORE_ERRORS:
        log.warning("job %s: uploading the checkpoint at %s failed; keeping the previous one", job_id, path)
        return False
    if not _complete(Path(path)):  # rotated away during the upload: some of its files may be missing
        log.warning(
            "job %s: the checkpoint at %s went while it was stored; keeping the previous one", job_id, path
        )
        return False
    return True


def _complete(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last but one (our run state follows it) and removes the
    whole directory when it rotates it away."""
    return (checkpoint / "trainer_state.json").is_file()


def remove_replaced(rt: Runtime, job_id: str, old: list[str]) -> None:
    """After the commit: the objects and directories of resume points no row names any more."""
    store = store_of(rt.settings)
    if store.remote:
        for relative in old:
            store.delete_prefix(artifacts.key_of(rt.settings, workdir(rt, job_id) / relative))
    remove_local(rt, job_id, [str(workdir(rt, job_id) / relative) for relative in old])


def remove_local(rt: Runtime, job_id: str, paths: list[str]) -> None:
    """Remove resumable checkpoints from the job's work directory, where the trainer leaves them to
    the worker (its spec's `worker_removes_checkpoints`); elsewhere the trainer keeps its newest two."""
    directory = workdir(rt, job_id)
    if not paths or not _worker_removes_checkpoints(directory):
        return
    for path in paths:
        checkpoint = Path(path).resolve()
        if checkpoint.is_relative_to(directory.resolve()) and checkpoint != directory.resolve():
            shutil.rmtree(checkpoint, ignore_errors=True)


def _worker_removes_checkpoints(directory: Path) -> bool:
    """What the spec the worker wrote for this run (worker/jobs/stage.py) told its trainer."""
    try:
        return TrainingSpec.read(directory / "spec.json").worker_removes_checkpoints
    except (OSError, ValueError):
        return False
