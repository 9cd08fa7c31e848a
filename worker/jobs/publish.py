"""The trained model and its epoch checkpoints stored as the job's artifacts.

Files first, rows after: an artifact is moved into place (place.py: a rename) outside any
transaction, and only then does a short transaction record it, which is what makes it visible to
the API. A directory the trainer reported is one it never writes to again, so moving it is safe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from api.checkpoints import service as checkpoints
from api.db import session_scope
from api.files import service as files_service
from api.files.service import StoredFile
from api.fine_tuning import artifacts, repository
from api.fine_tuning.service import fine_tuned_model_name
from api.fine_tuning.status import SUCCEEDED, transition
from api.tables import FineTuningJob
from worker.jobs.place import store_artifact
from worker.jobs.stage import workdir
from worker.runtime import Runtime
from worker.training.progress import Checkpoint, Completed


def store_checkpoint(rt: Runtime, job_id: str, event: Checkpoint) -> None:
    """Move an epoch's artifact into place, then record the checkpoint and its event."""
    store_artifact(
        rt.settings,
        _reported(rt, job_id, event.artifact_dir),
        artifacts.checkpoint_dir(rt.settings, job_id, event.step),
    )
    metrics = asdict(event.metrics)
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None:
            return
        row = checkpoints.record(session, job, event.step, metrics)
        repository.add_event(
            session,
            job,
            f"Checkpoint saved at step {event.step}: {row.fine_tuned_model_checkpoint}",
            data={"checkpoint": row.id, "step": event.step, "metrics": metrics},
        )


@dataclass(frozen=True)
class PreparedModel:
    """The trained model moved into place and its result file staged: all the file work of
    publishing, done before the transaction that records it."""

    completed: Completed
    result_file: StoredFile


def prepare(rt: Runtime, job_id: str, project_pk: int, completed: Completed) -> PreparedModel:
    trained = _reported(rt, job_id, completed.artifact_dir)
    store_artifact(rt.settings, trained, artifacts.adapter_dir(rt.settings, job_id))
    try:
        result_file = files_service.stage_result(rt.file_storage, project_pk, Path(completed.result_file))
    except BaseException:
        artifacts.remove_adapter(rt.settings, job_id)  # no model without its record, even on disk
        raise
    return PreparedModel(completed, result_file)


def publish(rt: Runtime, session: Session, job: FineTuningJob, prepared: PreparedModel) -> None:
    """Record the prepared model as the job's fine-tuned model: rows only, in the caller's transaction."""
    completed = prepared.completed
    results = files_service.store_result(
        session, job.project_pk, prepared.result_file, Path(completed.result_file).name
    )
    if completed.labels:
        job.method = {**job.method, "labels": list(completed.labels)}
    job.fine_tuned_model = fine_tuned_model_name(job)
    job.trained_tokens = completed.trained_tokens
    job.result_files = [results.id]
    repository.add_event(session, job, f"New fine-tuned model created: {job.fine_tuned_model}")
    transition(session, job, SUCCEEDED, "The job has successfully completed")


def withdraw(rt: Runtime, job_id: str, prepared: PreparedModel) -> None:
    """Undo a preparation whose job did not succeed after all (cancelled while its model was stored)."""
    files_service.withdraw_result(rt.file_storage, prepared.result_file)
    artifacts.remove_adapter(rt.settings, job_id)


def _reported(rt: Runtime, job_id: str, path: str) -> Path:
    # Moving is destructive: only ever move what the job's own trainer wrote in its work directory.
    reported = Path(path).resolve()
    if not reported.is_relative_to(workdir(rt, job_id).resolve()):
        raise RuntimeError(f"the trainer reported an artifact outside its work directory: {path}")
    return reported
