"""create_app(): routers, OpenAI-shaped error handlers, and the shared objects of one process."""

from __future__ import annotations

import logging

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import openapi
from api.checkpoints.endpoints import router as checkpoints_router
from api.config import Settings
from api.dashboard.endpoints import install as install_dashboard
from api.db import busy_reason, database_timed_out, make_engine, make_sessionmaker
from api.errors import ServerBusy, TuneryError, describe_validation_error, error_body
from api.estimates.endpoints import router as estimates_router
from api.evals.endpoints import router as evals_router
from api.files.endpoints import router as files_router
from api.files.storage import FileStorage
from api.fine_tuning.endpoints import router as jobs_router
from api.graders.endpoints import router as graders_router
from api.health import router as health_router
from api.inference.endpoints import router as inference_router
from api.inference.routing import Backends
from api.metrics.endpoints import router as metrics_router
from api.metrics.http import RequestMetrics
from api.models.endpoints import router as models_router
from api.models.store import ModelStore
from api.nul_guard import NulGuard
from api.one_hop import caller_failure, reads_caller_in_step
from api.rate_limit import make_limiter
from api.upload_limit import UploadLimit
from api.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("tunery.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Tunery",
        version="0.1.0",
        description="Self-hosted fine-tuning with the OpenAI fine-tuning API.",
    )
    engine = make_engine(settings, serves_requests=True)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine, settings)
    # As many requests inside the database at once as the pool has connections (api/deps.py).
    app.state.database_slots = anyio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
    app.state.file_storage = FileStorage.of(settings)
    app.state.file_storage.sweep_staging()  # what an API killed mid-upload left
    app.state.model_store = ModelStore(settings.models_path)
    app.state.rate_limiter = make_limiter(settings)
    app.state.inference_backends = Backends(settings)

    app.include_router(files_router)
    app.include_router(jobs_router)
    app.include_router(estimates_router)
    app.include_router(checkpoints_router)
    app.include_router(models_router)
    app.include_router(inference_router)
    app.include_router(webhooks_router)
    app.include_router(metrics_router)
    install_dashboard(app)
    app.include_router(graders_router)
    app.include_router(evals_router)
    app.include_router(health_router)

    _install_error_handlers(app)
    openapi.install(app)
    app.add_middleware(UploadLimit, max_body_bytes=settings.max_upload_bytes)
    app.add_middleware(NulGuard)
    app.add_middleware(RequestMetrics)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TuneryError)
    async def tunery_error(_request: Request, exc: TuneryError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeout)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # Waits the database cut short at DB_TIMEOUT_SECONDS are the server being busy (503, which the
        # SDK retries), not a fault of ours; anything else from the database is.
        if database_timed_out(exc):
            busy = ServerBusy(f"The server is busy: {busy_reason(exc)}. Try again.")
            return await tunery_error(request, busy)
        return await unexpected_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if reads_caller_in_step(request):  # its key was not looked up yet: a bad one is 401, first
            refused = await anyio.to_thread.run_sync(caller_failure, request)
            if refused is not None:
                return await tunery_error(request, refused)
        # OpenAI answers bad parameters with 400 naming the field, not FastAPI's 422 list.
        param, message = describe_validation_error(exc.errors())
        return JSONResponse(error_body(message, type="invalid_request_error", param=param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(str(exc.detail), type="invalid_request_error"),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("The server had an error while processing your request.", type="server_error"),
            status_code=500,
        )
