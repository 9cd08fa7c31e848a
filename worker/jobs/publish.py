"""The trained model and its epoch checkpoints stored as the job's artifacts."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session

from api.checkpoints import service as checkpoints
from api.files import service as files_service
from api.fine_tuning import artifacts, repository
from api.fine_tuning.service import fine_tuned_model_name
from api.fine_tuning.status import SUCCEEDED, transition
from api.tables import FineTuningJob
from worker.runtime import Runtime
from worker.training.progress import Checkpoint, Completed


def store_checkpoint(rt: Runtime, session: Session, job: FineTuningJob, event: Checkpoint) -> None:
    step = event.step
    target = artifacts.checkpoint_dir(rt.settings, job.id, step)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(event.artifact_dir, target)
    metrics = asdict(event.metrics)
    row = checkpoints.record(session, job, step, metrics)
    repository.add_event(
        session,
        job,
        f"Checkpoint saved at step {step}: {row.fine_tuned_model_checkpoint}",
        data={"checkpoint": row.id, "step": step, "metrics": metrics},
    )


def publish(rt: Runtime, session: Session, job: FineTuningJob, final: Completed) -> None:
    target = artifacts.adapter_dir(rt.settings, job.id)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(final.artifact_dir, target)
    results = files_service.store_result(session, rt.file_storage, job.project_pk, Path(final.result_file))
    if final.labels:
        job.method = {**job.method, "labels": list(final.labels)}
    job.fine_tuned_model = fine_tuned_model_name(job)
    job.trained_tokens = final.trained_tokens
    job.result_files = [results.id]
    repository.add_event(session, job, f"New fine-tuned model created: {job.fine_tuned_model}")
    transition(session, job, SUCCEEDED, "The job has successfully completed")
