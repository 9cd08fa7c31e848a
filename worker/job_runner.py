"""What the worker does with a job: validate its files, then train it and store what it made.

Each step reads the job row first and acts only if the row says the step is due, so a message
delivered twice does nothing the second time. Progress is committed in short transactions, so the
API shows it while the trainer runs.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api import clock, queue
from api.db import session_scope
from api.files import repository as files
from api.files import service as files_service
from api.files.validation import DatasetIssue, check_dataset, check_lines
from api.fine_tuning import artifacts, hyperparameters, repository
from api.fine_tuning.service import fine_tuned_model_name
from api.fine_tuning.status import FAILED, QUEUED, RUNNING, SUCCEEDED, VALIDATING_FILES, transition
from api.tables import FineTuningJob
from worker.runtime import Runtime
from worker.supervisor import TrainerEvent, run_trainer
from worker.training.spec import LoraRecipe, TrainingSpec

log = logging.getLogger("tunery.worker")


def validate_job(rt: Runtime, job_id: str) -> None:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != VALIDATING_FILES:
            log.info("validate %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return
        issue, n_examples = _check_files(rt, session, job)
        if issue is not None:
            _fail(session, job, issue.code, issue.message, param="training_file")
            return
        job.n_training_examples = n_examples
        job.hyperparameters = hyperparameters.resolve(job.hyperparameters, n_examples)
        transition(
            session,
            job,
            QUEUED,
            "Files validated, moving job to queued state",
            data={"n_examples": n_examples, "hyperparameters": job.hyperparameters},
        )
    queue.enqueue(rt.settings, queue.RUN_JOB, job_id)


def run_job(rt: Runtime, job_id: str) -> None:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != QUEUED:
            log.info("run %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return
        transition(session, job, RUNNING, "Fine-tuning job started")
    try:
        _train(rt, job_id)
    except Exception as exc:
        log.exception("job %s failed in the worker", job_id)
        with session_scope(rt.sessions) as session:
            job = repository.get_for_update(session, job_id)
            if job is not None and job.status == RUNNING:
                _fail(session, job, "internal_error", f"{type(exc).__name__}: {exc}")


def _train(rt: Runtime, job_id: str) -> None:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        assert job is not None
        spec = _stage(rt, session, job)
    workdir = Path(spec.output_dir).parent
    spec_path = workdir / "spec.json"
    spec.write(spec_path)
    started = clock.now()

    def on_event(event: TrainerEvent) -> None:
        with session_scope(rt.sessions) as progress:
            _record_progress(progress, job_id, event, started)

    outcome = run_trainer(spec_path, workdir / "trainer.log", on_event)
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != RUNNING:
            return  # changed under us (cancelled): nothing of this run is published
        final = outcome.final_event or {}
        if outcome.returncode == 0 and final.get("event") == "completed":
            _publish(rt, session, job, spec, final)
        else:
            message = final.get("message") or (
                f"trainer exited with code {outcome.returncode}: {outcome.stderr_tail[-2000:]}"
            )
            _fail(session, job, final.get("code", "training_error"), message)


def _check_files(rt: Runtime, session: Session, job: FineTuningJob) -> tuple[DatasetIssue | None, int]:
    n_training = 0
    for param, file_id in (("training_file", job.training_file), ("validation_file", job.validation_file)):
        if file_id is None:
            continue
        row = files.get_any_project(session, file_id)
        if row is None:
            return DatasetIssue(f"invalid_{param}", f"{param} {file_id} was deleted before validation"), 0
        with rt.file_storage.path(row.storage_key).open("rb") as lines:
            report = check_lines(lines)
        if param == "training_file":
            issue = check_dataset(report, job.method["type"])
            n_training = report.n_examples
        else:
            issue = None if report.ok else DatasetIssue("invalid_validation_file", report.summary())
        if issue is not None:
            return issue, 0
    return None, n_training


def _stage(rt: Runtime, session: Session, job: FineTuningJob) -> TrainingSpec:
    """Copy the job's inputs into its work directory and describe the run."""
    workdir = rt.settings.jobs_path / job.id
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    base = rt.model_store.get(job.model)
    if base is None:
        raise RuntimeError(f"base model {job.model} is no longer in the model store")

    def staged(file_id: str, name: str) -> str:
        row = files.get_any_project(session, file_id)
        if row is None:
            raise RuntimeError(f"file {file_id} was deleted")
        rt.file_storage.copy_to(row.storage_key, workdir / name)
        return str(workdir / name)

    hp = job.hyperparameters
    recipe = dict(job.recipe)
    return TrainingSpec(
        job_id=job.id,
        base_model_dir=str(base.path),
        training_file=staged(job.training_file, "train.jsonl"),
        validation_file=staged(job.validation_file, "validation.jsonl") if job.validation_file else None,
        output_dir=str(workdir / "output"),
        n_epochs=hp["n_epochs"],
        batch_size=hp["batch_size"],
        learning_rate=hyperparameters.learning_rate(recipe["type"], hp["learning_rate_multiplier"]),
        seed=job.seed,
        method=job.method["type"],
        recipe=LoraRecipe(**recipe),
    )


def _record_progress(session: Session, job_id: str, event: TrainerEvent, started: int) -> None:
    job = repository.get_for_update(session, job_id)
    if job is None:
        return
    kind = event.get("event")
    if kind == "metrics":
        step, total = int(event["step"]), int(event["total_steps"])
        data = {k: v for k, v in event.items() if k != "event"}
        loss = event.get("train_loss")
        message = (
            f"Step {step}/{total}: training loss={loss:.4f}" if loss is not None else f"Step {step}/{total}"
        )
        repository.add_event(session, job, message, type="metrics", data=data)
        if step > 0:
            elapsed = clock.now() - started
            job.estimated_finish = started + int(elapsed * total / step)
    elif kind == "started":
        details = {k: v for k, v in event.items() if k != "event"}
        repository.add_event(
            session,
            job,
            f"Training {event.get('trainable_params')} of {event.get('total_params')} parameters "
            f"for {event.get('total_steps')} steps",
            data=details,
        )
    elif kind == "message":
        level = event.get("level", "info")
        repository.add_event(
            session, job, str(event.get("message", "")), level=level if level in ("info", "warn") else "info"
        )


def _publish(
    rt: Runtime, session: Session, job: FineTuningJob, spec: TrainingSpec, final: dict[str, Any]
) -> None:
    target = artifacts.adapter_dir(rt.settings, job.id)
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir(parents=True)
    shutil.copytree(final.get("adapter_dir") or spec.adapter_dir, target)
    _archive(target, artifacts.adapter_archive(rt.settings, job.id))
    results = files_service.store_result(
        session, rt.file_storage, job.project_pk, Path(final.get("result_file") or spec.result_file)
    )
    job.fine_tuned_model = fine_tuned_model_name(job)
    job.trained_tokens = int(final.get("trained_tokens") or 0)
    job.result_files = [results.id]
    repository.add_event(session, job, f"New fine-tuned model created: {job.fine_tuned_model}")
    transition(session, job, SUCCEEDED, "The job has successfully completed")


def _archive(adapter: Path, archive: Path) -> None:
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(adapter, arcname="adapter")
    partial.replace(archive)


def _fail(session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None) -> None:
    job.error = {"code": code, "message": message, "param": param}
    transition(session, job, FAILED, f"Fine-tuning job failed: {message}", level="error")
