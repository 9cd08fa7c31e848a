"""Validating a job's files: each one checked line by line against the job's method and, where the
base model says how long its context is, against that; then queued, or failed with the first issue."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from api import queue
from api.db import session_scope
from api.files import repository as files
from api.files.validation import (
    DatasetIssue,
    DatasetReport,
    TokenCounter,
    check_dataset,
    check_lines,
    read_lines,
)
from api.fine_tuning import hyperparameters, repository
from api.fine_tuning.status import QUEUED, VALIDATING_FILES, transition
from api.tables import FineTuningJob
from worker.context_length import example_token_counter
from worker.jobs.finish import fail
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker")


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
            fail(session, job, issue.code, issue.message, param=param)
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
