"""FastAPI dependencies: the request's session and the calling project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

import anyio
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from api.auth.service import Caller, authenticate
from api.config import Settings
from api.db import end_session, open_session, session_ended, session_scope
from api.errors import RateLimited, ServerBusy


async def database_slot(request: Request) -> AsyncIterator[None]:
    """Wait for one of a bounded number of slots before touching the database.

    A request's dependencies and endpoint run in separate threadpool steps, and its connection is
    held from the first query until the end. Without a bound, a burst of requests fills every
    thread with requests waiting for a connection, while the requests holding the connections wait
    for a thread: nothing moves until the pool times out. Waiting here holds neither, and lasts at
    most DB_TIMEOUT_SECONDS: then the request is answered 503 instead of waiting on.
    """
    slots: anyio.Semaphore = request.app.state.database_slots
    timeout = request.app.state.settings.db_timeout_seconds
    with anyio.move_on_after(timeout) as waiting:
        await slots.acquire()
    if waiting.cancelled_caught:
        raise ServerBusy(
            f"The server is busy: no database slot came free within {timeout:g} s "
            "(TUNERY_DB_TIMEOUT_SECONDS). Try again."
        )
    try:
        yield
    finally:
        slots.release()


async def get_session(
    request: Request, _slot: Annotated[None, Depends(database_slot, scope="function")]
) -> AsyncIterator[Session]:
    """One session per request: commit when the endpoint returns, roll back when it raises.

    Async, so that opening it (no I/O) takes no threadpool hop; its end (the commit, and what
    waits for it) does blocking I/O and takes one, unless the endpoint's route already ended it in
    the endpoint's own step (api/one_hop.py). Under load each hop is a thread handoff that
    on SQLite also prolongs the write lock a create holds until its commit.
    """
    reads_only = request.method == "GET"
    session = open_session(request.app.state.sessionmaker, writes=not reads_only)
    if reads_only:
        request.state.read_session = session  # get_caller's too (below)
    try:
        yield session
    except BaseException:
        if not session_ended(session):
            await anyio.to_thread.run_sync(partial(end_session, session, failed=True))
        raise
    if not session_ended(session):
        await anyio.to_thread.run_sync(partial(end_session, session, failed=False))


# Dependencies that only read app state are async: FastAPI runs a sync one on the threadpool, and
# each such hop (a thread handoff and its wakeups) cost about as much as a small query under load.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


# "function" scope: the commit happens before the response goes out, so a client that reads what it
# just wrote (the next SDK call) always finds it. The default would commit after sending.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_caller(
    request: Request,
    _slot: Annotated[None, Depends(database_slot, scope="function")],
    authorization: Annotated[str | None, Header()] = None,
    openai_project: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The calling key's project, read in a short read-only transaction of its own.

    Not in the request's session when it may write: that one begins at the endpoint's first query,
    so an upload stages and checks its file (seconds for a large one) before it opens a transaction,
    and on SQLite no other writer waits for it meanwhile. A GET's session only reads: the key is read
    in it when it is already made (it is, when the endpoint names its session first), which saves a
    connection checkout, its ping and a transaction's round trips on every read.
    """
    shared = getattr(request.state, "read_session", None) if request.method == "GET" else None
    if shared is not None:
        return authenticate(shared, authorization, openai_project)
    with session_scope(request.app.state.sessionmaker, writes=False) as session:
        return authenticate(session, authorization, openai_project)


CallerDep = Annotated[Caller, Depends(get_caller)]


def _rate_limit(kind: str, setting: str):  # type: ignore[no-untyped-def]
    async def check(request: Request, caller: CallerDep) -> None:
        limit = getattr(request.app.state.settings, setting)
        if not limit:
            return
        # The counter is a blocking call (Redis, or a SQLite file): off the event loop.
        hit = request.app.state.rate_limiter.hit
        retry_after = await anyio.to_thread.run_sync(hit, f"{kind}:{caller.key_id}", limit)
        if retry_after is not None:
            raise RateLimited(
                f"Too many {kind} with this API key: at most {limit} a minute "
                f"(TUNERY_{setting.upper()}). Try again in {retry_after} s.",
                retry_after=retry_after,
            )

    return Depends(check)


JobCreationLimit = _rate_limit("job creations", "rate_limit_jobs_per_minute")
UploadRateLimit = _rate_limit("uploads", "rate_limit_uploads_per_minute")
