"""The embedded inference backend: an OpenAI-compatible HTTP server (the routes vLLM's OpenAI server
has, plus /v1/classifications), run by `tunery inference`.

It has no keys and listens on 127.0.0.1: the API authenticates, decides which model a project may use
and sends the request on with `target`, the base model and artifact directory it resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from api.config import Settings
from api.errors import describe_validation_error, error_body
from api.fine_tuning import artifacts
from api.inference.schemas import BackendChatRequest, BackendClassificationRequest, BackendCompletionRequest
from api.models.store import ModelStore
from api.storage import store_of
from worker.inference.engine import (
    Batchable,
    Busy,
    Classified,
    Done,
    Ended,
    Engine,
    EventStream,
    Failed,
    Produced,
    Ready,
    Work,
)
from worker.inference.models import ModelPool, ModelUnavailable
from worker.inference.prompts import PromptError
from worker.inference.responses import DONE, Answer, sse
from worker.inference.work import chat_work, classification_work, completion_work

DISCONNECT_POLL_SECONDS = 0.25


class UnloadRequest(BaseModel):
    artifact_dir: str


def create_inference_app(settings: Settings, pool: ModelPool | None = None) -> FastAPI:
    remote = store_of(settings).remote
    pool = pool or ModelPool(
        ModelStore(settings.models_path),
        settings.artifacts_path,
        settings.inference_max_adapters,
        fetch=(lambda path: artifacts.fetch(settings, path)) if remote else None,
    )
    engine = Engine(pool, settings.inference_max_queue)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.shutdown()

    app = FastAPI(title="Tunery inference backend", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "loaded": pool.loaded(),
            "in_flight": engine.admitted,  # running or waiting
            "cancelled_generations": engine.cancelled,
        }

    @app.post("/v1/unload_model")
    async def unload_model(body: UnloadRequest) -> dict[str, Any]:
        """Drop a fine-tuned model from the pool (the API calls it once the model is deleted)."""
        unloaded = await engine.run_between(lambda pool: pool.unload(body.artifact_dir))
        return {"artifact_dir": body.artifact_dir, "unloaded": unloaded}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: BackendChatRequest, request: Request) -> Response:
        answer = Answer(
            "chat",
            body.model,
            bool(body.stream_options and body.stream_options.include_usage),
            tools=bool(body.tools) and body.tool_choice != "none",
        )
        return await _respond(
            request,
            engine,
            chat_work(body),
            answer,
            bool(body.stream),
            bool(body.logprobs),
            (body.model, body.target),
        )

    @app.post("/v1/completions")
    async def completions(body: BackendCompletionRequest, request: Request) -> Response:
        answer = Answer(
            "completion", body.model, bool(body.stream_options and body.stream_options.include_usage)
        )
        with_logprobs = body.logprobs is not None
        return await _respond(
            request,
            engine,
            completion_work(body),
            answer,
            bool(body.stream),
            with_logprobs,
            (body.model, body.target),
        )

    @app.post("/v1/classifications")
    async def classifications(body: BackendClassificationRequest, request: Request) -> Response:
        try:
            events = engine.submit(classification_work(body), (body.model, body.target))
        except Busy as busy:
            return _busy(busy)
        classified = None
        # Until Done, not just the result: then the place in line is free when the client hears back.
        while not isinstance(event := await _next(events, request), Done | Failed | None):
            classified = event
        if isinstance(event, Failed):
            return _error(event.error)
        if not isinstance(classified, Classified):
            return Response(status_code=499)
        event = classified
        return JSONResponse(
            {
                "object": "list",
                "model": body.model,
                "data": [{"object": "classification", **result} for result in event.results],
                "usage": {"prompt_tokens": event.prompt_tokens, "total_tokens": event.prompt_tokens},
            }
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        param, message = describe_validation_error(exc.errors())
        return JSONResponse(error_body(message, type="invalid_request_error", param=param), status_code=400)

    return app


async def _respond(
    request: Request,
    engine: Engine,
    work: Work | Batchable,
    answer: Answer,
    stream: bool,
    with_logprobs: bool,
    needs: tuple[str, Any],
) -> Response:
    try:
        events = engine.submit(work, needs)
    except Busy as busy:
        return _busy(busy)
    first = await _next(events, request)
    if isinstance(first, Failed):
        return _error(first.error)
    if not isinstance(first, Ready):  # the client left while it waited
        return Response(status_code=499)
    answer.prompt_tokens = first.prompt_tokens
    if stream:
        return _EventStreamResponse(_stream(events, answer, with_logprobs), events)
    while not isinstance(event := await _next(events, request), Done | Failed | None):
        if isinstance(event, Produced):
            answer.add(event.index, event.piece.text, event.piece.logprobs)
        elif isinstance(event, Ended):
            answer.end(event.index, event.finished.finish_reason, event.finished.completion_tokens)
    if isinstance(event, Failed):
        return _error(event.error)
    if event is None:
        return Response(status_code=499)
    return JSONResponse(answer.whole(with_logprobs))


async def _stream(events: EventStream, answer: Answer, with_logprobs: bool) -> AsyncIterator[str]:
    started: set[int] = set()
    while True:
        event = await events.get()
        if isinstance(event, Produced):
            if answer.kind == "chat" and event.index not in started:
                started.add(event.index)
                yield answer.role_chunk(event.index)
            answer.add(event.index, event.piece.text, event.piece.logprobs)
            if answer.kind == "chat":
                chunk = answer.stream_piece(event.index, event.piece.logprobs, with_logprobs)
                if chunk is not None:
                    yield chunk
            else:
                yield answer.piece_chunk(event.index, event.piece.text, event.piece.logprobs, with_logprobs)
        elif isinstance(event, Ended):
            if answer.kind == "chat" and event.index not in started:  # an empty answer still has a role
                started.add(event.index)
                yield answer.role_chunk(event.index)
            answer.end(event.index, event.finished.finish_reason, event.finished.completion_tokens)
            for chunk in answer.end_chunks(event.index):
                yield chunk
        elif isinstance(event, Failed):
            # The status (200) is gone already: the SDK raises APIError on an `error` event.
            yield sse(_error_body(event.error))
            return
        elif isinstance(event, Done):
            break
    if answer.include_usage:
        yield answer.usage_chunk()
    yield DONE


class _EventStreamResponse(StreamingResponse):
    """Server-sent events that cancel their generation however the response ends: finished, the
    client gone mid-stream, or the client gone before the first byte (when the body never starts)."""

    def __init__(self, body: AsyncIterator[str], events: EventStream) -> None:
        super().__init__(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.events = events

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.events.cancel()


async def _next(events: EventStream, request: Request) -> Any:
    """The next event; None (and the generation cancelled) when the client has gone."""
    while True:
        try:
            return await asyncio.wait_for(events.get(), DISCONNECT_POLL_SECONDS)
        except TimeoutError:
            if await request.is_disconnected():
                events.cancel()
                return None


def _busy(busy: Busy) -> JSONResponse:
    return JSONResponse(
        error_body(str(busy), type="rate_limit_error", code="rate_limit_exceeded"),
        status_code=429,
        headers={"Retry-After": "1"},
    )


def _error(error: BaseException) -> JSONResponse:
    status = 404 if isinstance(error, ModelUnavailable) else 400 if isinstance(error, PromptError) else 500
    return JSONResponse(_error_body(error), status_code=status)


def _error_body(error: BaseException) -> dict[str, Any]:
    if isinstance(error, ModelUnavailable):
        return error_body(str(error), type="invalid_request_error", code="model_not_found")
    if isinstance(error, PromptError):
        return error_body(error.message, type="invalid_request_error", param=error.param, code=error.code)
    return error_body(f"The inference backend failed: {error}", type="server_error")


def serve(settings: Settings) -> None:
    import uvicorn

    print(
        f"Tunery inference backend on http://{settings.inference_host}:{settings.inference_port}/v1",
        flush=True,
    )
    uvicorn.run(
        create_inference_app(settings),
        host=settings.inference_host,
        port=settings.inference_port,
        log_level="warning",
        timeout_keep_alive=75,
    )
