"""run_eval: a queued run claimed under a lease, its items graded in batches, the run finished.

Each batch is graded with no transaction open (samples and judges are HTTP calls to the inference
backend, a batch's items at once so the backend batches them), then recorded in one short transaction
on the locked run row, which also says whether to go on: a canceled or deleted run, or a lease another
worker holds now, stops the run. A heartbeat renews the lease between batches' records, so a run whose
worker dies is queued again by the reconciler (reconcile.py) and the next worker grades only the items
not yet recorded.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api import clock, queue
from api.auth.service import Caller
from api.db import session_scope
from api.evals import criteria, items, repository, service
from api.evals.data_sources import CompletionsDataSource, FileContentSource, read_data_source
from api.evals.status import COMPLETED, FAILED, IN_PROGRESS, QUEUED, TERMINAL, transition
from api.files import service as files
from api.graders import judge
from api.graders import service as graders
from api.graders.judge import BackendJudge
from api.ids import new_id
from api.tables import EvalOutputItem, EvalRun, Project
from graders import Context
from graders.remote_judge import ask
from worker import leases
from worker.evals.grading import Graded, Grading, grade_item
from worker.jobs.run import shutting_down
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker.evals")

BATCH_SIZE = 16
"""Items graded at once, then recorded together: the inference backend batches their samples."""


class RunFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claimed:
    run_id: str
    caller: Caller
    data_source: dict[str, Any]
    item_schema: dict[str, Any]
    criteria: list[dict[str, Any]]
    recorded: set[int]


def run_eval(rt: Runtime, run_id: str) -> None:
    claimed = claim(rt, run_id)
    if claimed is None:
        return
    try:
        _grade_all(rt, claimed)
    except RunFailed as error:
        _end(rt, run_id, failure={"code": error.code, "message": error.message})
    except Exception as error:
        log.exception("eval run %s failed in the worker", run_id)
        _end(rt, run_id, failure={"code": "internal_error", "message": f"{type(error).__name__}: {error}"})


def claim(rt: Runtime, run_id: str) -> Claimed | None:
    with session_scope(rt.sessions) as session:
        run = repository.run_for_update(session, run_id)
        if run is None or run.status != QUEUED:
            log.info("eval run %s: nothing to do (%s)", run_id, run.status if run else "no such run")
            return None
        if leases.is_held_by_other(run, rt.worker_id):
            run.enqueued_at = clock.now()  # the reconciler rings again once that lease is over
            return None
        if out_of_attempts(rt, session, run):
            return None
        run.attempts += 1
        leases.take(run, rt.worker_id, rt.settings.lease_seconds)
        transition(session, run, IN_PROGRESS)
        row = repository.eval_by_pk(session, run.eval_pk)
        project = session.get(Project, run.project_pk)
        assert row is not None and project is not None
        return Claimed(
            run_id=run.id,
            caller=Caller(project=project),
            data_source=run.data_source,
            item_schema=row.data_source_config["item_schema"],
            criteria=row.testing_criteria,
            recorded=repository.recorded_indexes(session, run),
        )


def out_of_attempts(rt: Runtime, session: Session, run: EvalRun) -> bool:
    """Fail a run whose workers were lost TUNERY_MAX_ATTEMPTS times, instead of retrying forever."""
    if run.attempts < rt.settings.max_attempts:
        return False
    message = f"The run's worker was lost {run.attempts} times (TUNERY_MAX_ATTEMPTS); it is not retried."
    transition(session, run, FAILED, {"code": "too_many_attempts", "message": message})
    return True


def _grade_all(rt: Runtime, claimed: Claimed) -> None:
    stop = threading.Event()
    heartbeat = threading.Thread(target=_heartbeat, args=(rt, claimed.run_id, stop), daemon=True)
    heartbeat.start()  # from the start: reading a large file of items may outlast the lease
    try:
        source_items = _items(rt, claimed)
        grading = _grading(rt, claimed)
        with session_scope(rt.sessions) as session:
            run = repository.run_for_update(session, claimed.run_id)
            if run is not None:
                run.result_counts = {**run.result_counts, "total": len(source_items)}
        pending = [source for source in source_items if source.index not in claimed.recorded]
        with ThreadPoolExecutor(max_workers=BATCH_SIZE, thread_name_prefix="eval-item") as pool:
            for start in range(0, len(pending), BATCH_SIZE):
                if stop.is_set() or shutting_down.is_set():
                    break
                graded = list(
                    pool.map(lambda source: grade_item(grading, source), pending[start : start + BATCH_SIZE])
                )
                if not _record(rt, claimed.run_id, graded):
                    stop.set()
    finally:
        stop.set()
        heartbeat.join()
    _end(rt, claimed.run_id)


def _items(rt: Runtime, claimed: Claimed) -> list[items.SourceItem]:
    source = read_data_source(claimed.data_source).source
    if isinstance(source, FileContentSource):
        return items.from_content(row.model_dump() for row in source.content)
    assert source is not None
    with session_scope(rt.sessions, writes=False) as session:
        row = files.in_project(session, claimed.caller.project.pk, source.id)
    if row is None:
        raise RunFailed("file_not_found", f"The run's file {source.id} no longer exists.")
    return items.from_lines(service.source_lines(rt.file_storage, row))  # read with no transaction open


def _grading(rt: Runtime, claimed: Claimed) -> Grading:
    context = Context(
        judge=BackendJudge(rt.settings, rt.sessions, rt.model_store, claimed.caller),
        sandbox=graders.sandbox(rt.settings),
    )
    graders_ = criteria.graders_of(claimed.criteria)
    data = read_data_source(claimed.data_source)
    if not isinstance(data, CompletionsDataSource):
        return Grading(graders_, claimed.item_schema, context)
    try:
        with session_scope(rt.sessions, writes=False) as session:
            where = judge.endpoint(session, rt.settings, rt.model_store, claimed.caller, data.model)
    except Exception as error:  # the model was deleted since the run was created
        raise RunFailed("model_not_found", f"The model {data.model!r} can't be used: {error}") from None
    sampling = data.sampling()
    return Grading(graders_, claimed.item_schema, context, data, lambda prompt: ask(where, prompt, sampling))


def _record(rt: Runtime, run_id: str, graded: list[Graded]) -> bool:
    """Record a batch on the run; False when the run is no longer this worker's to go on with."""
    with session_scope(rt.sessions) as session:
        run = repository.run_for_update(session, run_id)
        if run is None or run.lease_owner != rt.worker_id or run.status != IN_PROGRESS:
            return False
        now = clock.now()
        recorded = repository.recorded_indexes(session, run)
        fresh = [one for one in graded if one.index not in recorded]
        for one in fresh:
            session.add(
                EvalOutputItem(
                    id=new_id("outputitem_"),
                    run_pk=run.pk,
                    datasource_item_id=one.index,
                    datasource_item=storable(one.item),
                    sample=storable(one.sample),
                    results=storable(one.results),
                    status=one.status,
                    created_at=now,
                )
            )
        _count(run, fresh)
        leases.renew(run, rt.worker_id, rt.settings.lease_seconds)
        return True


def storable(value: Any) -> Any:
    """`value` with each NUL character replaced: Postgres stores none in JSONB, and a random model says
    them (so may an item's file)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def _count(run: EvalRun, graded: list[Graded]) -> None:
    counts = dict(run.result_counts)
    names = {"pass": "passed", "fail": "failed", "errored": "errored"}
    for one in graded:
        counts[names[one.status]] = counts.get(names[one.status], 0) + 1
    run.result_counts = counts
    per_criterion = [dict(entry) for entry in run.per_testing_criteria_results]
    for one in graded:
        for entry, result in zip(per_criterion, one.results, strict=False):
            entry["passed" if result["passed"] else "failed"] += 1
    run.per_testing_criteria_results = per_criterion
    usage = {entry["model_name"]: dict(entry) for entry in run.per_model_usage}
    for one in graded:
        for model, counted in one.usage.items():
            total = usage.setdefault(model, {"model_name": model, "cached_tokens": 0})
            for key, value in counted.items():
                total[key] = total.get(key, 0) + value
    run.per_model_usage = list(usage.values())


def _heartbeat(rt: Runtime, run_id: str, stop: threading.Event) -> None:
    """Renew the lease while batches are graded; stop the run when its row says so."""
    while not stop.wait(rt.settings.heartbeat_seconds):
        try:
            with session_scope(rt.sessions) as session:
                run = repository.run_for_update(session, run_id)
                if (
                    run is None
                    or run.status != IN_PROGRESS
                    or not leases.renew(run, rt.worker_id, rt.settings.lease_seconds)
                ):
                    stop.set()
        except Exception:
            log.exception("eval run %s: heartbeat failed; trying again", run_id)


def _end(rt: Runtime, run_id: str, failure: dict[str, str] | None = None) -> None:
    """Completed (or failed) if the run is still this worker's and in progress; handed back to the queue
    when the worker is shutting down before it is done."""
    requeue = False
    with session_scope(rt.sessions) as session:
        run = repository.run_for_update(session, run_id)
        if run is None or run.lease_owner != rt.worker_id:
            return
        leases.release(run, rt.worker_id)
        if run.status in TERMINAL:
            return
        if failure is not None:
            transition(session, run, FAILED, failure)
        elif len(repository.recorded_indexes(session, run)) >= run.result_counts.get("total", 0):
            transition(session, run, COMPLETED)
        else:
            transition(session, run, QUEUED)  # shutting down: the next worker grades the rest
            run.enqueued_at = clock.now()
            requeue = True
    if requeue:
        queue.enqueue(rt.settings, queue.RUN_EVAL, run_id)
