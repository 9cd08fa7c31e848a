"""Evals and their runs: create (each part checked, a bad field named), read, list, change, cancel.

Runs are executed by the workers (worker/evals/): creating one writes the row and rings the queue once
the row is committed; a cancel only changes the row, which the run's worker watches.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api import clock, queue
from api.auth.service import Caller
from api.config import Settings
from api.db import after_commit, session_scope
from api.errors import InvalidRequest, NotFound, TuneryError, model_not_found
from api.evals import criteria, data_sources, items, repository
from api.evals.data_sources import CompletionsDataSource, FileConfig, FileIdSource, TemplateInput
from api.evals.schemas import EvalCreate, EvalUpdate, RunCreate
from api.evals.source_files import source_file, source_lines
from api.evals.status import CANCELED, STATUSES, TERMINAL, InvalidRunTransition, transition
from api.files.storage import FileStorage
from api.graders import judge
from api.ids import new_id
from api.models.store import ModelStore
from api.tables import Eval, EvalOutputItem, EvalRun
from graders.templates import TemplateError, placeholders


def create_eval(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    store: ModelStore,
    storage: FileStorage,
    caller: Caller,
    body: EvalCreate,
) -> Eval:
    """`sessions`: a `file` config's file is found in a short session of its own and read before the
    request's transaction begins (on SQLite a writing one holds the write lock)."""
    config = data_sources.read_config(body.data_source_config)
    stored = config.model_dump()
    if isinstance(config, FileConfig):
        with session_scope(sessions, writes=False) as lookup:
            row = source_file(lookup, caller, config.file_id, "data_source_config.file_id")
        stored["item_schema"] = items.infer_schema(items.from_lines(source_lines(storage, row)))
    testing = criteria.read_criteria(
        session, settings, store, caller, body.testing_criteria, stored["item_schema"]
    )
    now = clock.now()
    row_eval = Eval(
        id=new_id("eval_"),
        project_pk=caller.project.pk,
        name=body.name or "",
        data_source_config=stored,
        testing_criteria=testing,
        eval_metadata=body.metadata,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, row_eval)
    return row_eval


def get_eval(session: Session, caller: Caller, eval_id: str) -> Eval:
    row = repository.get_eval(session, caller.scope, eval_id)
    if row is None:
        raise NotFound(f"No eval found with id {eval_id}", param="eval_id", code="not_found")
    return row


def list_evals(
    session: Session, caller: Caller, *, after: str | None, limit: int, order: str, order_by: str
) -> tuple[list[Eval], bool]:
    cursor = get_eval(session, caller, after) if after else None
    rows = repository.evals_page(
        session,
        caller.scope,
        after=cursor,
        limit=limit,
        ascending=order == "asc",
        by_update=order_by == "updated_at",
    )
    return rows[:limit], len(rows) > limit


def update_eval(session: Session, caller: Caller, eval_id: str, body: EvalUpdate) -> Eval:
    row = get_eval(session, caller, eval_id)
    if "name" in body.model_fields_set and body.name is not None:
        row.name = body.name
    if "metadata" in body.model_fields_set:
        row.eval_metadata = body.metadata
    row.updated_at = clock.now()
    return row


def delete_eval(session: Session, caller: Caller, eval_id: str) -> None:
    repository.remove_eval(session, get_eval(session, caller, eval_id))


def create_run(
    session: Session,
    settings: Settings,
    store: ModelStore,
    caller: Caller,
    eval_id: str,
    body: RunCreate | None,
) -> EvalRun:
    row = get_eval(session, caller, eval_id)
    if body is None:
        raise InvalidRequest("Missing required parameter: data_source", param="data_source")
    return start_run(
        session, settings, store, caller, row, body.data_source, name=body.name, metadata=body.metadata
    )


def start_run(
    session: Session,
    settings: Settings,
    store: ModelStore,
    caller: Caller,
    row: Eval,
    value: dict[str, Any],
    *,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    job_id: str | None = None,
    param: str = "data_source",
) -> EvalRun:
    """A queued run of `row` over the data source `value`, its message sent once committed."""
    source = data_sources.read_data_source(value, param)
    if source.source is None:
        config = row.data_source_config
        if config["type"] != "file":
            raise InvalidRequest(f"Missing required parameter: {param}.source", param=f"{param}.source")
        source.source = FileIdSource(type="file_id", id=config["file_id"])
    if isinstance(source.source, FileIdSource):
        source_file(session, caller, source.source.id, f"{param}.source.id")
    if isinstance(source, CompletionsDataSource):
        check_model(session, settings, store, caller, source.model, f"{param}.model")
        _check_input_messages(source, param)
    criteria_names = [criterion["name"] for criterion in row.testing_criteria]
    run = EvalRun(
        id=new_id("evalrun_"),
        eval_pk=row.pk,
        project_pk=row.project_pk,
        name=name or f"{source.type}-run",
        model=source.model if isinstance(source, CompletionsDataSource) else None,
        data_source=source.model_dump(mode="json", exclude_none=True),
        status="queued",
        result_counts={"total": 0, "passed": 0, "failed": 0, "errored": 0},
        per_testing_criteria_results=[
            {"testing_criteria": n, "passed": 0, "failed": 0} for n in criteria_names
        ],
        per_model_usage=[],
        run_metadata=metadata,
        fine_tuning_job_id=job_id,
        created_at=clock.now(),
    )
    run.enqueued_at = clock.now()
    repository.add(session, run)
    run_id = run.id
    after_commit(session, lambda: queue.enqueue(settings, queue.RUN_EVAL, run_id))
    return run


def get_run(
    session: Session, caller: Caller, eval_id: str, run_id: str, *, for_update: bool = False
) -> tuple[Eval, EvalRun]:
    row = get_eval(session, caller, eval_id)
    run = repository.get_run(session, row, run_id, for_update=for_update)
    if run is None:
        raise NotFound(f"No run {run_id} in eval {eval_id}", param="run_id", code="not_found")
    return row, run


def list_runs(
    session: Session,
    caller: Caller,
    eval_id: str,
    *,
    after: str | None,
    limit: int,
    order: str,
    status: str | None,
) -> tuple[Eval, list[EvalRun], bool]:
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", param="status")
    row = get_eval(session, caller, eval_id)
    cursor = get_run(session, caller, eval_id, after)[1] if after else None
    runs = repository.runs_page(
        session, row, after=cursor, limit=limit, ascending=order == "asc", status=status
    )
    return row, runs[:limit], len(runs) > limit


def cancel_run(session: Session, caller: Caller, eval_id: str, run_id: str) -> tuple[Eval, EvalRun]:
    """A queued run never starts; a running one stops at its worker's next look at the row."""
    row, run = get_run(session, caller, eval_id, run_id, for_update=True)
    if run.status in TERMINAL:
        raise InvalidRunTransition(f"Run {run.id} has already {run.status} and cannot be canceled.")
    transition(session, run, CANCELED)
    return row, run


def delete_run(session: Session, caller: Caller, eval_id: str, run_id: str) -> None:
    # A running run's worker finds the row gone at its next look and stops.
    repository.remove_run(session, get_run(session, caller, eval_id, run_id, for_update=True)[1])


def list_items(
    session: Session,
    caller: Caller,
    eval_id: str,
    run_id: str,
    *,
    after: str | None,
    limit: int,
    order: str,
    status: str | None,
) -> tuple[list[EvalOutputItem], bool]:
    if status is not None and status not in ("pass", "fail", "errored"):
        raise InvalidRequest("status must be pass, fail or errored", param="status")
    _, run = get_run(session, caller, eval_id, run_id)
    cursor = get_item(session, caller, eval_id, run_id, after) if after else None
    rows = repository.items_page(
        session, run, after=cursor, limit=limit, ascending=order == "asc", status=status
    )
    return rows[:limit], len(rows) > limit


def get_item(session: Session, caller: Caller, eval_id: str, run_id: str, item_id: str) -> EvalOutputItem:
    _, run = get_run(session, caller, eval_id, run_id)
    item = repository.get_item(session, run, item_id)
    if item is None:
        raise NotFound(f"No output item {item_id} in run {run_id}", param="output_item_id", code="not_found")
    return item


def report_url(eval_id: str, run_id: str) -> str:
    return f"/dashboard/evals/{eval_id}?run={run_id}"


def check_model(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, model: str, param: str
) -> None:
    """404 for a model the project may not use (another project's is as unknown as a missing one)."""
    try:
        judge.endpoint(session, settings, store, caller, model)
    except NotFound:
        raise model_not_found(model, param=param) from None
    except TuneryError as error:
        raise InvalidRequest(f"{param}: {error.message}", param=param, code=error.code) from None


def _check_input_messages(source: CompletionsDataSource, param: str) -> None:
    if not isinstance(source.input_messages, TemplateInput):
        return
    for index, message in enumerate(source.input_messages.template):
        parts = message.content if isinstance(message.content, list) else [message.content]
        for part in parts:
            try:
                paths = list(placeholders(part if isinstance(part, str) else part.text))
            except TemplateError as error:
                field = f"{param}.input_messages.template.{index}.content"
                raise InvalidRequest(f"{field}: {error}", param=field) from None
            if any(path[0] != "item" for path in paths):
                field = f"{param}.input_messages.template.{index}.content"
                raise InvalidRequest(f"{field}: a model's input may read only {{{{item.x}}}}", param=field)
