"""Routes whose sync endpoint and the end of its request's unit of work run in one threadpool step.

FastAPI runs a sync endpoint in the threadpool, then its session's teardown (the commit) in another
step, then the response model's validation in a third. Under load each step waits its turn for a
thread and for the event loop, and on SQLite a create held the database's one write lock across
those waits, from its BEGIN IMMEDIATE in the endpoint's step to its commit in the next. Here the
endpoint and its commit (or rollback) share one step, so the lock is held only while the statements
run; the endpoint becomes a coroutine, so FastAPI validates its response on the loop, in no step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

import anyio
from fastapi.params import Depends
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from api.db import end_session
from api.deps import get_session


class OneHopRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if _runs_in_the_threadpool(endpoint) and _takes_the_request_session(endpoint):
            endpoint = _in_one_step(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _runs_in_the_threadpool(endpoint: Callable[..., Any]) -> bool:
    return not (
        inspect.iscoroutinefunction(endpoint)
        or inspect.isgeneratorfunction(endpoint)
        or inspect.isasyncgenfunction(endpoint)
    )


def _takes_the_request_session(endpoint: Callable[..., Any]) -> bool:
    from fastapi.dependencies.utils import get_typed_signature

    for parameter in get_typed_signature(endpoint).parameters.values():
        annotation = parameter.annotation
        if get_origin(annotation) is Annotated and any(
            isinstance(meta, Depends) and meta.dependency is get_session for meta in get_args(annotation)[1:]
        ):
            return True
    return False


def _in_one_step(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
    async def endpoint_and_its_commit(**values: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(_call_and_end, endpoint, values))

    return endpoint_and_its_commit


def _call_and_end(endpoint: Callable[..., Any], values: dict[str, Any]) -> Any:
    sessions = [value for value in values.values() if isinstance(value, Session)]
    try:
        result = endpoint(**values)
    except BaseException:
        for session in sessions:
            end_session(session, failed=True)
        raise
    for session in sessions:
        end_session(session, failed=False)  # get_session sees it ended, and takes no step of its own
    return result
