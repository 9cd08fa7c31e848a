"""Validating a job's files: each one checked line by line against the job's method and, where the
base model says how long its context is, against that; then queued, or failed with the first issue.

Checking takes seconds to minutes (a tokenizer per example), so it runs between two short
transactions and holds no row lock: the user's cancel, and every other write, go on meanwhile. The
worker holds the job's lease while it checks (renewed every heartbeat), which tells the reconciler
and a second delivery of the message that the job is being validated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
from catalog.formats import reading_formats
from catalog.methods import METHODS
from graders import item_fields, parse_grader
from worker import leases
from worker.context_length import example_token_counter
from worker.jobs.finish import fail
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker")


@dataclass(frozen=True)
class _Inputs:
    """What checking the job's files needs, read from its row."""

    model: str
    method_type: str
    max_seq_length: Any
    files: list[tuple[str, str, str | None]]
    """(param, file id, storage key or None when the file was deleted), training file first."""
    item_fields: frozenset[str] = frozenset()
    """The fields of a line the job's grader reads (item.<field>): each line must have them."""


def validate_job(rt: Runtime, job_id: str) -> None:
    inputs = _begin(rt, job_id)
    if inputs is None:
        return
    try:
        with _lease_kept(rt, job_id):
            issue, training, warnings = _check_files(rt, job_id, inputs)
    except BaseException:
        _let_go(rt, job_id)
        raise
    queued, pool = _record(rt, job_id, issue, training, warnings)
    if queued:
        queue.enqueue(rt.settings, queue.RUN_JOB, job_id, pool=pool)


def _begin(rt: Runtime, job_id: str) -> _Inputs | None:
    """Take the lease on a job that is due for validation, and read what checking needs."""
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None or job.status != VALIDATING_FILES:
            log.info("validate %s: nothing to do (%s)", job_id, job.status if job else "no such job")
            return None
        if leases.is_held_by_other(job, rt.worker_id):
            log.info("validate %s: another worker is validating it", job_id)
            return None
        leases.take(job, rt.worker_id, rt.settings.lease_seconds)
        found = []
        for param, file_id in (
            ("training_file", job.training_file),
            ("validation_file", job.validation_file),
        ):
            if file_id is not None:
                row = files.get_any_project(session, file_id)
                found.append((param, file_id, row.storage_key if row else None))
        grader = job.method.get("grader")
        fields = frozenset(item_fields(parse_grader(grader))) if grader else frozenset()
        return _Inputs(job.model, job.method["type"], (job.recipe or {}).get("max_seq_length"), found, fields)


def _record(
    rt: Runtime, job_id: str, issue: DatasetIssue | None, training: DatasetReport | None, warnings: list[str]
) -> tuple[bool, str | None]:
    """Queue or fail the job by what the check found; (True, its pool) when it was queued (a message
    is due to that pool's training queue)."""
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is None:
            return False, None
        leases.release(job, rt.worker_id)
        if job.status != VALIDATING_FILES:
            return False, None  # cancelled while we looked
        for warning in warnings:
            repository.add_event(session, job, warning, level="warn")
        if issue is not None or training is None:
            assert issue is not None
            param = "validation_file" if issue.code == "invalid_validation_file" else "training_file"
            fail(session, job, issue.code, issue.message, param=param)
            return False, None
        n_examples = training.n_examples
        job.n_training_examples = n_examples
        if METHODS[job.method["type"]].labels:
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
        queue.mark_enqueued(job)
        return True, job.pool


def _let_go(rt: Runtime, job_id: str) -> None:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is not None:
            leases.release(job, rt.worker_id)


@contextmanager
def _lease_kept(rt: Runtime, job_id: str) -> Iterator[None]:
    """Renew the job's lease every heartbeat while the block runs."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(rt.settings.heartbeat_seconds):
            try:
                with session_scope(rt.sessions) as session:
                    job = repository.get_for_update(session, job_id)
                    if job is not None:
                        leases.renew(job, rt.worker_id, rt.settings.lease_seconds)
            except Exception:  # a database blip: the lease has slack for a few misses
                log.exception("validate %s: renewing the lease failed; will try again", job_id)

    thread = threading.Thread(target=renew, name="validation-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _check_files(
    rt: Runtime, job_id: str, inputs: _Inputs
) -> tuple[DatasetIssue | None, DatasetReport | None, list[str]]:
    """The first issue with the job's files (or None), the training file's report, and warnings."""
    count_tokens, max_tokens, limit_name = _token_limit(rt, job_id, inputs)
    training: DatasetReport | None = None
    warnings: list[str] = []
    for param, file_id, storage_key in inputs.files:
        if storage_key is None:
            deleted = DatasetIssue(f"invalid_{param}", f"{param} {file_id} was deleted before validation")
            return deleted, None, warnings
        limits = rt.settings
        with rt.file_storage.local_copy(storage_key) as path, path.open("rb") as stream:
            report = check_lines(
                read_lines(stream, limits.max_line_bytes),
                count_tokens=count_tokens,
                max_tokens=max_tokens,
                limit_name=limit_name,
                max_line_bytes=limits.max_line_bytes,
                max_lines=limits.max_lines,
                formats=reading_formats(inputs.method_type),
                item_fields=inputs.item_fields,
            )
        purpose = param.removesuffix("_file")
        issue = check_dataset(report, inputs.method_type, purpose=purpose, training=training)
        if issue is not None:
            return issue, None, warnings
        warning = report.warning_summary()
        if warning:
            warnings.append(f"{purpose} file: {warning}")
        if param == "training_file":
            training = report
    return None, training, warnings


def _token_limit(rt: Runtime, job_id: str, inputs: _Inputs) -> tuple[TokenCounter | None, int | None, str]:
    """What counts an example's tokens for the job's base model, and the length training truncates to."""
    base = rt.model_store.get(inputs.model)
    if base is None:
        return None, None, ""
    try:
        count, context_length = example_token_counter(base.path)
    except ValueError as exc:  # the model does not say how long its context is
        log.warning("job %s: examples are not checked against the context: %s", job_id, exc)
        return None, None, ""
    max_seq_length = inputs.max_seq_length
    if isinstance(max_seq_length, int) and max_seq_length < context_length:
        return count, max_seq_length, "the recipe's max_seq_length"
    return count, context_length, "the model's context"
