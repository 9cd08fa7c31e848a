"""FastAPI dependencies: the request's session and the calling project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

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


@dataclass(frozen=True)
class CallerHeaders:
    """What names the caller, read off the request without I/O; `read_caller` looks the key up."""

    request: Request
    authorization: str | None
    openai_project: str | None


async def caller_headers(
    request: Request,
    _slot: Annotated[None, Depends(database_slot, scope="function")],
    authorization: Annotated[str | None, Header()] = None,
    openai_project: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> CallerHeaders:
    return CallerHeaders(request, authorization, openai_project)


def read_caller(headers: CallerHeaders, shared: Session | None = None) -> Caller:
    """The calling key's project, read in a short read-only transaction of its own.

    Not in the request's session when it may write: that one begins at the endpoint's first query,
    so an upload stages and checks its file (seconds for a large one) before it opens a transaction,
    and on SQLite no other writer waits for it meanwhile. A GET's session only reads: the key is read
    in it when it is already made (it is, when the endpoint names its session first), which saves a
    connection checkout, its ping and a transaction's round trips on every read.
    """
    if shared is not None:  # a GET's own session, still open
        return authenticate(shared, headers.authorization, headers.openai_project)
    with session_scope(headers.request.app.state.sessionmaker, writes=False) as session:
        return authenticate(session, headers.authorization, headers.openai_project)


def get_caller(headers: Annotated[CallerHeaders, Depends(caller_headers)]) -> Caller:
    """The caller as a dependency of its own (a threadpool step). Routes of api/one_hop.py read it in
    their endpoint's step instead."""
    request = headers.request
    shared = getattr(request.state, "read_session", None) if request.method == "GET" else None
    return read_caller(headers, shared)


CallerDep = Annotated[Caller, Depends(get_caller)]


@dataclass(frozen=True)
class RateLimit:
    """A per-key limit on one kind of request, `setting` requests a minute (0: off)."""

    kind: str
    setting: str

    def enforce(self, request: Request, caller: Caller) -> None:
        """Count this request against the caller's key; blocking (Redis, or a SQLite file)."""
        limit = getattr(request.app.state.settings, self.setting)
        if not limit:
            return
        retry_after = request.app.state.rate_limiter.hit(f"{self.kind}:{caller.key_id}", limit)
        if retry_after is not None:
            raise RateLimited(
                f"Too many {self.kind} with this API key: at most {limit} a minute "
                f"(TUNERY_{self.setting.upper()}). Try again in {retry_after} s.",
                retry_after=retry_after,
            )

    def dependency(self) -> Any:
        """As a route dependency; api/one_hop.py takes it out and enforces it in the endpoint's step."""

        async def check(request: Request, caller: CallerDep) -> None:
            if getattr(request.app.state.settings, self.setting):
                await anyio.to_thread.run_sync(self.enforce, request, caller)

        check.rate_limit = self  # type: ignore[attr-defined]
        return Depends(check)


JobCreationLimit = RateLimit("job creations", "rate_limit_jobs_per_minute").dependency()
UploadRateLimit = RateLimit("uploads", "rate_limit_uploads_per_minute").dependency()
