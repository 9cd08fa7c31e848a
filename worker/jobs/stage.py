"""A job's work directory: its inputs copied in, and the TrainingSpec that describes the run.

A job with a resumable checkpoint keeps its work directory (the checkpoint lives there) and continues
from it; otherwise the directory starts empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from api.files import repository as files
from api.fine_tuning import hyperparameters
from api.tables import FineTuningJob
from worker.runtime import Runtime
from worker.training.spec import Recipe, TrainingSpec


def workdir(rt: Runtime, job_id: str) -> Path:
    return rt.settings.jobs_path / job_id


def stage(rt: Runtime, session: Session, job: FineTuningJob) -> TrainingSpec:
    directory = workdir(rt, job.id)
    resume_from = directory / job.resume_from if job.resume_from else None
    if resume_from is None or not resume_from.is_dir():
        resume_from = None
        job.resume_from = job.resume_step = None
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    base = rt.model_store.get(job.model)
    if base is None:
        raise RuntimeError(f"base model {job.model} is no longer in the model store")

    def staged(file_id: str, name: str) -> str:
        row = files.get_any_project(session, file_id)
        if row is None:
            raise RuntimeError(f"file {file_id} was deleted")
        rt.file_storage.copy_to(row.storage_key, directory / name)
        return str(directory / name)

    hp = job.hyperparameters
    recipe = Recipe.from_dict(job.recipe)
    return TrainingSpec(
        job_id=job.id,
        base_model_dir=str(base.path),
        training_file=staged(job.training_file, "train.jsonl"),
        validation_file=staged(job.validation_file, "validation.jsonl") if job.validation_file else None,
        output_dir=str(directory / "output"),
        n_epochs=hp["n_epochs"],
        batch_size=hp["batch_size"],
        learning_rate=hyperparameters.learning_rate(
            recipe.type, job.method["type"], hp["learning_rate_multiplier"]
        ),
        seed=job.seed,
        method=job.method["type"],
        recipe=recipe,
        beta=hp.get("beta", 0.1),
        labels=job.method.get("labels"),
        checkpoint_every_steps=rt.settings.checkpoint_every_steps,
        checkpoint_every_minutes=rt.settings.checkpoint_every_minutes,
        resume_from=str(resume_from) if resume_from else None,
    )
