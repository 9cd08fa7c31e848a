"""/v1/chat/completions, /v1/completions and /v1/classifications: resolve the model, forward, stream back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth.service import Caller
from api.db import session_scope
from api.deps import CallerDep
from api.inference import service
from api.inference.routing import Backends, Route, route
from api.inference.schemas import ChatCompletionRequest, ClassificationRequest, CompletionRequest
from api.one_hop import OneHopRoute
from api.request_models import Strict

router = APIRouter(prefix="/v1", tags=["inference"], route_class=OneHopRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An unsupported or invalid field, named in `param`"},
    404: {"description": "No such model, or not one this project may use (`model_not_found`)"},
    429: {"description": "The inference backend is busy; retry after Retry-After"},
    503: {"description": "The inference backend does not answer"},
}
SSE: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/event-stream": {}}}}


@router.post("/chat/completions", responses={**ERRORS, **SSE})
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, caller: CallerDep
) -> Response:
    return await _forward(request, caller, "/chat/completions", body, "generate", bool(body.stream))


@router.post("/completions", responses={**ERRORS, **SSE})
async def create_completion(body: CompletionRequest, request: Request, caller: CallerDep) -> Response:
    return await _forward(request, caller, "/completions", body, "generate", bool(body.stream))


@router.post("/classifications", responses=ERRORS)
async def create_classification(body: ClassificationRequest, request: Request, caller: CallerDep) -> Response:
    """Tunery's extension: the label a classification model gives each input, and every label's score."""
    return await _forward(request, caller, "/classifications", body, "classify", stream=False)


async def _forward(
    request: Request, caller: Caller, path: str, body: Strict, task: service.Task, stream: bool
) -> Response:
    state = request.app.state
    async with state.database_slots:
        served, where = await run_in_threadpool(_resolve, state, caller, body.model)  # type: ignore[attr-defined]
    service.require_task(served, task)
    payload = {**body.model_dump(mode="json", exclude_unset=True), "target": served.target.model_dump()}
    backends: Backends = state.inference_backends
    return await backends.forward(request, where, path, payload, stream)


def _resolve(state: Any, caller: Caller, model: str) -> tuple[service.ServedModel, Route]:
    # A session of its own, closed before forwarding: an answer may stream for minutes, and holding a
    # connection (on SQLite, a transaction) that long would starve everyone else of the pool.
    with session_scope(state.sessionmaker, writes=False) as session:
        served = service.resolve(session, state.settings, state.model_store, caller, model)
    target = served.target
    return served, route(state.settings, served.name, target.base_model, target.artifact_dir, served.task)
