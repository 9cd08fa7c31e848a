"""/v1/evals: evals, their runs and output items, as client.evals calls them. Thin routes over the service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.deps import CallerDep, SessionDep, SettingsDep
from api.evals import data_sources, service
from api.evals.schemas import (
    EvalCreate,
    EvalDeleted,
    EvalObject,
    EvalUpdate,
    OutputItemObject,
    RunCreate,
    RunDeleted,
    RunObject,
    eval_object,
)
from api.models.endpoints import ModelStoreDep
from api.one_hop import OneHopRoute
from api.pagination import Page
from api.tables import Eval, EvalRun

router = APIRouter(prefix="/v1/evals", tags=["evals"], route_class=OneHopRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An invalid field, named in `param`"},
    404: {"description": "No such eval, run, output item or model in this project"},
}
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]


def _eval(row: Eval) -> EvalObject:
    return eval_object(row, data_sources.echoed(row.data_source_config))


def _run(row: Eval, run: EvalRun) -> RunObject:
    return RunObject.of(run, row.id, service.report_url(row.id, run.id))


@router.post("", response_model=EvalObject, responses=ERRORS)
def create_eval(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    store: ModelStoreDep,
    body: EvalCreate,
) -> EvalObject:
    state = request.app.state
    made = service.create_eval(session, state.sessionmaker, settings, store, state.file_storage, caller, body)
    return _eval(made)


@router.get("", response_model=Page[EvalObject], responses=ERRORS)
def list_evals(
    session: SessionDep,
    caller: CallerDep,
    after: str | None = None,
    limit: Limit = 20,
    order: Order = "asc",
    order_by: Literal["created_at", "updated_at"] = "created_at",
) -> Page[EvalObject]:
    rows, has_more = service.list_evals(
        session, caller, after=after, limit=limit, order=order, order_by=order_by
    )
    return Page.of([_eval(row) for row in rows], has_more)


@router.get("/{eval_id}", response_model=EvalObject, responses=ERRORS)
def retrieve_eval(session: SessionDep, caller: CallerDep, eval_id: str) -> EvalObject:
    return _eval(service.get_eval(session, caller, eval_id))


@router.post("/{eval_id}", response_model=EvalObject, responses=ERRORS)
def update_eval(
    session: SessionDep, caller: CallerDep, eval_id: str, body: EvalUpdate | None = None
) -> EvalObject:
    return _eval(service.update_eval(session, caller, eval_id, body or EvalUpdate()))


@router.delete("/{eval_id}", response_model=EvalDeleted, responses=ERRORS)
def delete_eval(session: SessionDep, caller: CallerDep, eval_id: str) -> EvalDeleted:
    service.delete_eval(session, caller, eval_id)
    return EvalDeleted(eval_id=eval_id)


@router.post("/{eval_id}/runs", response_model=RunObject, responses=ERRORS)
def create_run(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    store: ModelStoreDep,
    eval_id: str,
    body: RunCreate | None = None,
) -> RunObject:
    # The body is required (the service says so): optional here, so another project's eval id is a 404 first.
    run = service.create_run(session, settings, store, caller, eval_id, body)
    return _run(service.get_eval(session, caller, eval_id), run)


@router.get("/{eval_id}/runs", response_model=Page[RunObject], responses=ERRORS)
def list_runs(
    session: SessionDep,
    caller: CallerDep,
    eval_id: str,
    after: str | None = None,
    limit: Limit = 20,
    order: Order = "asc",
    status: str | None = None,
) -> Page[RunObject]:
    row, runs, has_more = service.list_runs(
        session, caller, eval_id, after=after, limit=limit, order=order, status=status
    )
    return Page.of([_run(row, run) for run in runs], has_more)


@router.get("/{eval_id}/runs/{run_id}", response_model=RunObject, responses=ERRORS)
def retrieve_run(session: SessionDep, caller: CallerDep, eval_id: str, run_id: str) -> RunObject:
    return _run(*service.get_run(session, caller, eval_id, run_id))


@router.post("/{eval_id}/runs/{run_id}", response_model=RunObject, responses=ERRORS)
def cancel_run(session: SessionDep, caller: CallerDep, eval_id: str, run_id: str) -> RunObject:
    """OpenAI's cancel: the SDK's runs.cancel posts here."""
    return _run(*service.cancel_run(session, caller, eval_id, run_id))


@router.post("/{eval_id}/runs/{run_id}/cancel", response_model=RunObject, responses=ERRORS)
def cancel_run_by_name(session: SessionDep, caller: CallerDep, eval_id: str, run_id: str) -> RunObject:
    return _run(*service.cancel_run(session, caller, eval_id, run_id))


@router.delete("/{eval_id}/runs/{run_id}", response_model=RunDeleted, responses=ERRORS)
def delete_run(session: SessionDep, caller: CallerDep, eval_id: str, run_id: str) -> RunDeleted:
    service.delete_run(session, caller, eval_id, run_id)
    return RunDeleted(run_id=run_id)


@router.get("/{eval_id}/runs/{run_id}/output_items", response_model=Page[OutputItemObject], responses=ERRORS)
def list_output_items(
    session: SessionDep,
    caller: CallerDep,
    eval_id: str,
    run_id: str,
    after: str | None = None,
    limit: Limit = 20,
    order: Order = "asc",
    status: str | None = None,
) -> Page[OutputItemObject]:
    rows, has_more = service.list_items(
        session, caller, eval_id, run_id, after=after, limit=limit, order=order, status=status
    )
    return Page.of([OutputItemObject.of(item, eval_id, run_id) for item in rows], has_more)


@router.get(
    "/{eval_id}/runs/{run_id}/output_items/{output_item_id}",
    response_model=OutputItemObject,
    responses=ERRORS,
)
def retrieve_output_item(
    session: SessionDep, caller: CallerDep, eval_id: str, run_id: str, output_item_id: str
) -> OutputItemObject:
    item = service.get_item(session, caller, eval_id, run_id, output_item_id)
    return OutputItemObject.of(item, eval_id, run_id)
