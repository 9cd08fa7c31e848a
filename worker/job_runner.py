"""What the worker does with a job: validate its files, then train it and store what it made.

Each step reads the job row first and acts only if the row says the step is due, so a message
delivered twice does nothing the second time. Training holds a lease on the row (worker/leases.py)
that a watcher renews every few seconds; the same watcher sees the user's cancel and pause in the
row and stops the trainer. Progress is committed in short transactions, so the API shows it live.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import threading
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session

from api import clock, queue
from api.checkpoints import service as checkpoints
from api.db import session_scope
from api.files import repository as files
from api.files import service as files_service
from api.files.validation import (
    DatasetIssue,
    DatasetReport,
    TokenCounter,
    check_dataset,
    check_lines,
    read_lines,
)
from api.fine_tuning import artifacts, hyperparameters, repository
from api.fine_tuning.service import fine_tuned_model_name
from api.fine_tuning.status import (
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    VALIDATING_FILES,
    transition,
)
from api.tables import FineTuningJob
from worker import leases
from worker.context_length import example_token_counter
from worker.runtime import Runtime
from worker.supervisor import Action, TrainerExit, UnreadableLine, Watch, run_trainer
from worker.training.progress import (
    Checkpoint,
    Completed,
    Failed,
    Message,
    Metrics,
    Resumable,
    Started,
    Stopped,
    TrainerEvent,
)
from worker.training.spec import Recipe, TrainingSpec

log = logging.getLogger("tunery.worker")

# Set by the worker's SIGTERM handling (worker/shutdown.py): running jobs checkpoint and go back
# to the queue instead of failing.
shutting_down = threading.Event()


def validate_job(rt: Runtime, job_id: str) -> None:
    # Read, then check the files without holding the row: validation can take seconds (a tokenizer
    # per example), and the user's cancel should not wait for it.
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != VALIDATING_FILES:
            log.info("validate %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return
        issue, training, warnings = _check_files(rt, session, job)
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != VALIDATING_FILES:
            return  # cancelled while we looked
        for warning in warnings:
            repository.add_event(session, job, warning, level="warn")
        if issue is not None or training is None:
            assert issue is not None
            param = "validation_file" if issue.code == "invalid_validation_file" else "training_file"
            _fail(session, job, issue.code, issue.message, param=param)
            return
        n_examples = training.n_examples
        job.n_training_examples = n_examples
        if job.method["type"] == "classification":
            # The label set is the job's record: the classifier's outputs, in this order.
            job.method = {**job.method, "labels": training.label_names}
        job.hyperparameters = hyperparameters.resolve(job.hyperparameters, n_examples, job.method["type"])
        transition(
            session,
            job,
            QUEUED,
            "Files validated, moving job to queued state",
            data={"n_examples": n_examples, "hyperparameters": job.hyperparameters},
        )
    queue.enqueue(rt.settings, queue.RUN_JOB, job_id)


def run_job(rt: Runtime, job_id: str) -> None:
    if not _claim(rt, job_id):
        return
    try:
        outcome, spec = _train(rt, job_id)
    except Exception as exc:
        log.exception("job %s failed in the worker", job_id)
        with session_scope(rt.sessions) as session:
            job = repository.get_for_update(session, job_id)
            if job is not None and job.lease_owner == rt.worker_id:
                leases.release(job, rt.worker_id)
                if job.status == RUNNING:
                    _fail(session, job, "internal_error", f"{type(exc).__name__}: {exc}")
        return
    _finish(rt, job_id, spec, outcome)


def _claim(rt: Runtime, job_id: str) -> bool:
    """Take the job's lease and mark it running; False when the job is not ours to run now."""
    retry_in: int | None = None
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != QUEUED:
            log.info("run %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return False
        if leases.is_held_by_other(job, rt.worker_id):
            # Its previous run is still stopping (a quick pause then resume): try again after it.
            retry_in = leases.seconds_left(job) + 1
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
    queue.enqueue(rt.settings, queue.RUN_JOB, job_id, countdown=retry_in)
    return False


def _train(rt: Runtime, job_id: str) -> tuple[TrainerExit, TrainingSpec]:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        assert job is not None
        spec = _stage(rt, session, job)
    workdir = _workdir(rt, job_id)
    spec_path = workdir / "spec.json"
    spec.write(spec_path)
    started = clock.now()

    def on_event(event: TrainerEvent | UnreadableLine) -> None:
        with session_scope(rt.sessions) as progress:
            _record_progress(rt, progress, job_id, event, started)

    def decide() -> Action:
        with session_scope(rt.sessions) as watch:
            job = repository.get_for_update(watch, job_id)
            if job is None or not leases.renew(job, rt.worker_id, rt.settings.lease_seconds):
                return Action.KILL  # deleted, or our lease expired and another worker has the job
            if job.status == RUNNING:
                return Action.STOP if shutting_down.is_set() else Action.CONTINUE
            # Paused, or paused and already resumed (queued): save a checkpoint to continue from.
            return Action.STOP if job.status in (PAUSED, QUEUED) else Action.KILL

    watch = Watch(decide, interval=rt.settings.heartbeat_seconds)
    return run_trainer(spec_path, workdir / "trainer.log", on_event, watch), spec


def _finish(rt: Runtime, job_id: str, spec: TrainingSpec, outcome: TrainerExit) -> None:
    """Settle the job after its trainer exited, according to what the row says now."""
    requeue = False
    clean_up = False
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.lease_owner != rt.worker_id:
            log.warning("job %s: lease lost while training; leaving the job to its new worker", job_id)
            return
        leases.release(job, rt.worker_id)
        final = outcome.final_event
        stopped = isinstance(final, Stopped)
        if stopped or outcome.action is Action.STOP:
            job.attempts -= 1  # a pause or a shutdown is not a failed attempt
        completed = outcome.returncode == 0 and isinstance(final, Completed)
        if completed and job.status in (PAUSED, QUEUED):
            assert isinstance(final, Completed)
            # The last steps ran before the pause reached the trainer: keep the finished model.
            repository.add_event(session, job, "Training finished before the pause took effect")
            _publish(rt, session, job, final)
            clean_up = True
        elif job.status == RUNNING:
            if completed:
                assert isinstance(final, Completed)
                _publish(rt, session, job, final)
                clean_up = True
            elif isinstance(final, Stopped):
                transition(
                    session,
                    job,
                    QUEUED,
                    f"Worker shutting down: checkpoint saved at step {final.step}, job queued again",
                )
                requeue = True
            else:
                code, message = "training_error", ""
                if isinstance(final, Failed):
                    code, message = final.code, final.message
                message = message or (
                    f"trainer exited with code {outcome.returncode}: {outcome.stderr_tail[-2000:]}"
                )
                _fail(session, job, code, message)
        elif job.status == PAUSED:
            if isinstance(final, Stopped):
                repository.add_event(session, job, f"Paused at step {final.step}: checkpoint saved")
            else:
                where = f"step {job.resume_step}" if job.resume_step else "the start"
                repository.add_event(
                    session, job, f"Paused before a checkpoint; resume continues from {where}"
                )
        elif job.status == CANCELLED:
            repository.add_event(session, job, "Trainer stopped")
            clean_up = True
    if requeue:
        queue.enqueue(rt.settings, queue.RUN_JOB, job_id)
    if clean_up:
        shutil.rmtree(_workdir(rt, job_id), ignore_errors=True)


def _check_files(
    rt: Runtime, session: Session, job: FineTuningJob
) -> tuple[DatasetIssue | None, DatasetReport | None, list[str]]:
    """The first issue with the job's files (or None), the training file's report, and warnings."""
    count_tokens, max_tokens, limit_name = _token_limit(rt, job)
    training: DatasetReport | None = None
    warnings: list[str] = []
    for param, file_id in (("training_file", job.training_file), ("validation_file", job.validation_file)):
        if file_id is None:
            continue
        row = files.get_any_project(session, file_id)
        if row is None:
            deleted = DatasetIssue(f"invalid_{param}", f"{param} {file_id} was deleted before validation")
            return deleted, None, warnings
        limits = rt.settings
        with rt.file_storage.path(row.storage_key).open("rb") as stream:
            report = check_lines(
                read_lines(stream, limits.max_line_bytes),
                count_tokens=count_tokens,
                max_tokens=max_tokens,
                limit_name=limit_name,
                max_line_bytes=limits.max_line_bytes,
                max_lines=limits.max_lines,
            )
        purpose = param.removesuffix("_file")
        issue = check_dataset(report, job.method["type"], purpose=purpose, training=training)
        if issue is not None:
            return issue, None, warnings
        warning = report.warning_summary()
        if warning:
            warnings.append(f"{purpose} file: {warning}")
        if param == "training_file":
            training = report
    return None, training, warnings


def _token_limit(rt: Runtime, job: FineTuningJob) -> tuple[TokenCounter | None, int | None, str]:
    """What counts an example's tokens for the job's base model, and the length training truncates to."""
    base = rt.model_store.get(job.model)
    if base is None:
        return None, None, ""
    try:
        count, context_length = example_token_counter(base.path)
    except ValueError as exc:  # the model does not say how long its context is
        log.warning("job %s: examples are not checked against the context: %s", job.id, exc)
        return None, None, ""
    max_seq_length = (job.recipe or {}).get("max_seq_length")
    if isinstance(max_seq_length, int) and max_seq_length < context_length:
        return count, max_seq_length, "the recipe's max_seq_length"
    return count, context_length, "the model's context"


def _workdir(rt: Runtime, job_id: str) -> Path:
    return rt.settings.jobs_path / job_id


def _stage(rt: Runtime, session: Session, job: FineTuningJob) -> TrainingSpec:
    """Copy the job's inputs into its work directory and describe the run.

    A job with a resumable checkpoint keeps its work directory (the checkpoint lives there) and
    continues from it; otherwise the directory starts empty.
    """
    workdir = _workdir(rt, job.id)
    resume_from = workdir / job.resume_from if job.resume_from else None
    if resume_from is None or not resume_from.is_dir():
        resume_from = None
        job.resume_from = job.resume_step = None
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
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
    recipe = Recipe.from_dict(job.recipe)
    return TrainingSpec(
        job_id=job.id,
        base_model_dir=str(base.path),
        training_file=staged(job.training_file, "train.jsonl"),
        validation_file=staged(job.validation_file, "validation.jsonl") if job.validation_file else None,
        output_dir=str(workdir / "output"),
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


def _record_progress(
    rt: Runtime, session: Session, job_id: str, event: TrainerEvent | UnreadableLine, started: int
) -> None:
    job = repository.get_for_update(session, job_id)
    if job is None:
        return
    if isinstance(event, Metrics):
        step, total = event.step, event.total_steps
        loss = event.train_loss
        message = (
            f"Step {step}/{total}: training loss={loss:.4f}" if loss is not None else f"Step {step}/{total}"
        )
        repository.add_event(session, job, message, type="metrics", data=asdict(event))
        if step > 0:
            elapsed = clock.now() - started
            first = job.resume_step or 0
            if step > first:
                job.estimated_finish = clock.now() + int(elapsed * (total - step) / (step - first))
    elif isinstance(event, Started):
        repository.add_event(
            session,
            job,
            f"Training {event.trainable_params} of {event.total_params} parameters "
            f"for {event.total_steps} steps",
            data=asdict(event),
        )
    elif isinstance(event, Checkpoint):
        _store_checkpoint(rt, session, job, event)
    elif isinstance(event, Resumable | Stopped):
        path = event.path if isinstance(event, Resumable) else event.resume_from
        if path is not None:
            job.resume_from = os.path.relpath(path, _workdir(rt, job_id))
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


def _store_checkpoint(rt: Runtime, session: Session, job: FineTuningJob, event: Checkpoint) -> None:
    step = event.step
    target = artifacts.checkpoint_dir(rt.settings, job.id, step)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(event.artifact_dir, target)
    _archive(target, artifacts.checkpoint_archive(rt.settings, job.id, step))
    metrics = asdict(event.metrics)
    row = checkpoints.record(session, job, step, metrics)
    repository.add_event(
        session,
        job,
        f"Checkpoint saved at step {step}: {row.fine_tuned_model_checkpoint}",
        data={"checkpoint": row.id, "step": step, "metrics": metrics},
    )


def _publish(rt: Runtime, session: Session, job: FineTuningJob, final: Completed) -> None:
    target = artifacts.adapter_dir(rt.settings, job.id)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(final.artifact_dir, target)
    _archive(target, artifacts.adapter_archive(rt.settings, job.id))
    results = files_service.store_result(session, rt.file_storage, job.project_pk, Path(final.result_file))
    if final.labels:
        job.method = {**job.method, "labels": list(final.labels)}
    job.fine_tuned_model = fine_tuned_model_name(job)
    job.trained_tokens = final.trained_tokens
    job.result_files = [results.id]
    repository.add_event(session, job, f"New fine-tuned model created: {job.fine_tuned_model}")
    transition(session, job, SUCCEEDED, "The job has successfully completed")


def _archive(adapter: Path, archive: Path) -> None:
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(adapter, arcname="adapter")
    partial.replace(archive)


def out_of_attempts(rt: Runtime, session: Session, job: FineTuningJob) -> bool:
    """Fail a job whose runs were cut short TUNERY_MAX_ATTEMPTS times, instead of retrying forever."""
    if job.attempts < rt.settings.max_attempts:
        return False
    message = f"The job's worker was lost {job.attempts} times (TUNERY_MAX_ATTEMPTS); it is not retried."
    _fail(session, job, "too_many_attempts", message)
    return True


def _fail(session: Session, job: FineTuningJob, code: str, message: str, param: str | None = None) -> None:
    job.error = {"code": code, "message": message, "param": param}
    transition(session, job, FAILED, f"Fine-tuning job failed: {message}", level="error")
