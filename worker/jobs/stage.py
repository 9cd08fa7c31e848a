"""A job's work directory: its inputs put in, and the TrainingSpec that describes the run.

A job with a resumable checkpoint keeps its work directory (the checkpoint lives there) and continues
from it; otherwise the directory starts empty. What the run needs is read in one short transaction;
the files are put in place after it (hard links where the filesystem allows: no copy at all).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.auth.service import Caller
from api.db import session_scope
from api.files import repository as files
from api.fine_tuning import artifacts, hyperparameters, repository
from api.graders.judge import judge_endpoints
from api.storage import store_of
from api.storage.directories import get_directory
from catalog.methods import MAX_COMPLETION_TOKENS, generations_per_prompt
from graders import parse_grader
from worker.jobs.place import link_file
from worker.runtime import Runtime
from worker.training.spec import Recipe, TrainingSpec


def workdir(rt: Runtime, job_id: str) -> Path:
    return rt.settings.jobs_path / job_id


@dataclass(frozen=True)
class _Inputs:
    spec: TrainingSpec
    files: dict[str, str]
    """The name each input takes in the work directory -> its key in file storage."""
    fresh: bool
    """No checkpoint to resume from: the work directory starts empty."""


def stage(rt: Runtime, job_id: str) -> TrainingSpec:
    _fetch_resumable(rt, job_id)
    inputs = _read(rt, job_id)
    directory = workdir(rt, job_id)
    if inputs.fresh:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in inputs.files.items():
        local = rt.file_storage.local_path(key)
        if local is not None:
            link_file(local, directory / name)
        else:
            rt.file_storage.copy_to(key, directory / name)  # from the bucket onto this worker's disk
    inputs.spec.write(directory / "spec.json")
    return inputs.spec


def _fetch_resumable(rt: Runtime, job_id: str) -> None:
    """On S3, download the checkpoint the job resumes from unless it is on this worker's disk already:
    the job was started on another worker (which died, or shut down), which uploaded it."""
    store = store_of(rt.settings)
    if not store.remote:
        return
    with session_scope(rt.sessions, writes=False) as session:
        job = repository.get(session, None, job_id)
        resume_from = job.resume_from if job is not None else None
    if resume_from:
        local = workdir(rt, job_id) / resume_from
        if not local.is_dir():
            get_directory(store, artifacts.key_of(rt.settings, local), local)


def _read(rt: Runtime, job_id: str) -> _Inputs:
    directory = workdir(rt, job_id)
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None:
            raise RuntimeError(f"job {job_id} was deleted")
        resume_from = directory / job.resume_from if job.resume_from else None
        if resume_from is None or not resume_from.is_dir():  # a stat, not file work
            resume_from = None
            job.resume_from = job.resume_step = None
        keys = {}
        for name, file_id in (("train.jsonl", job.training_file), ("validation.jsonl", job.validation_file)):
            if file_id is None:
                continue
            row = files.get_any_project(session, file_id)
            if row is None:
                raise RuntimeError(f"file {file_id} was deleted")
            keys[name] = row.storage_key
        model, hp, method, recipe, seed = job.model, job.hyperparameters, job.method, job.recipe, job.seed
        # Where the grader's judging models answer, resolved for the job's project as chat resolves them.
        judges = (
            judge_endpoints(session, rt.settings, rt.model_store, Caller(job.project), parse_grader(grader))
            if (grader := method.get("grader"))
            else {}
        )
        start = dict(job.start_from) if job.start_from else None
    base = rt.model_store.get(model)
    if base is None:
        raise RuntimeError(f"base model {model} is no longer in the model store")
    recipe_spec = Recipe.from_dict(recipe)
    base_model_dir = str(base.path)
    if start is not None:
        start["directory"] = str(_starting_dir(rt, start))  # fetched from the bucket if need be
        if start["artifact_format"] == "model":
            base_model_dir = start["directory"]  # a whole model trained on: it is this run's base
    spec = TrainingSpec(
        job_id=job_id,
        base_model_dir=base_model_dir,
        start_from=start,
        training_file=str(directory / "train.jsonl"),
        validation_file=str(directory / "validation.jsonl") if "validation.jsonl" in keys else None,
        output_dir=str(directory / "output"),
        n_epochs=hp["n_epochs"],
        batch_size=hp["batch_size"],
        learning_rate=hyperparameters.learning_rate(
            recipe_spec.type, method["type"], hp["learning_rate_multiplier"]
        ),
        seed=seed,
        method=method["type"],
        recipe=recipe_spec,
        beta=hp.get("beta", 0.1),
        labels=method.get("labels"),
        checkpoint_every_steps=rt.settings.checkpoint_every_steps,
        checkpoint_every_minutes=rt.settings.checkpoint_every_minutes,
        resume_from=str(resume_from) if resume_from else None,
        worker_removes_checkpoints=recipe_spec.num_nodes <= 1,  # worker/jobs/progress.py
        **_reinforcement(rt, hp, method, judges),
    )
    return _Inputs(spec, keys, fresh=resume_from is None)


def _reinforcement(
    rt: Runtime, hp: dict[str, Any], method: dict[str, Any], judges: dict[str, Any]
) -> dict[str, Any]:
    """The spec's reinforcement fields: the grader, its sandbox (Tunery's data out of sight), its
    judges' endpoints, GRPO's sizes."""
    if not method.get("grader"):
        return {}
    settings = rt.settings
    hidden = [str(settings.data_path)]
    if not settings.models_path.is_relative_to(settings.data_path):
        hidden.append(str(settings.models_path))
    return {
        "grader": method["grader"],
        "grader_sandbox": {
            "cpu_seconds": settings.grader_cpu_seconds,
            "memory_bytes": settings.grader_memory_mb << 20,
            "wall_seconds": settings.grader_wall_seconds,
            "hidden": hidden,
        },
        "judges": judges or None,
        "num_generations": generations_per_prompt(hp.get("compute_multiplier", 1.0)),
        "max_completion_tokens": MAX_COMPLETION_TOKENS,
        "eval_interval": hp.get("eval_interval", 1),
        "eval_samples": hp.get("eval_samples", 8),
    }


def _starting_dir(rt: Runtime, start: dict) -> Path:
    """The artifact a job trains on from: the earlier job's fine-tuned model or its checkpoint."""
    if start.get("step") is None:
        directory = artifacts.adapter_dir(rt.settings, start["job_id"])
    else:
        directory = artifacts.checkpoint_dir(rt.settings, start["job_id"], start["step"])
    if not artifacts.fetch(rt.settings, directory):
        raise RuntimeError(f"{start['model']}, which the job trains on from, has been deleted")
    return directory
