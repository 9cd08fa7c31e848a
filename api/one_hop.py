"""Routes whose sync endpoint and the end of its request's unit of work run in one threadpool step.

FastAPI runs a sync endpoint in the threadpool, then its session's teardown (the commit) in another
step, then the response model's validation in a third. Under load each step waits its turn for a
thread and for the event loop, and on SQLite a create held the database's one write lock across
those waits, from its BEGIN IMMEDIATE in the endpoint's step to its commit in the next. Here the
endpoint and its commit (or rollback) share one step, so the lock is held only while the statements
run; the endpoint becomes a coroutine, so FastAPI validates its response on the loop, in no step.

The caller's key is looked up in that step too, before the endpoint, instead of in a dependency's
step of its own: the route's parameter for it becomes the request's headers (`caller_headers`, no
I/O), and its per-key rate limits are enforced in the step after the lookup. One step a request, as
a plain FastAPI endpoint takes. A request whose parameters fail validation never reaches the step,
so the validation error's handler looks the key up first (`caller_failure`): a bad key is still
answered 401 before a bad parameter is answered 400, as OpenAI does.
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
from api.deps import CallerHeaders, RateLimit, caller_headers, get_caller, get_session, read_caller
from api.errors import AuthenticationFailed

HEADERS_PARAMETER = "tunery_caller_headers"


class OneHopRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self.reads_caller_in_step = False
        if _runs_in_the_threadpool(endpoint) and _takes_the_request_session(endpoint):
            caller = _caller_parameter(endpoint)
            limits: list[RateLimit] = []
            if caller is not None:
                dependencies = list(kwargs.get("dependencies") or [])
                limits = [limit for d in dependencies if (limit := _rate_limit_of(d)) is not None]
                kwargs["dependencies"] = [d for d in dependencies if _rate_limit_of(d) is None]
                self.reads_caller_in_step = True
            endpoint = _in_one_step(endpoint, caller, limits)
        super().__init__(path, endpoint, **kwargs)
        if self.reads_caller_in_step and _depends_on(self.dependant, get_caller):
            # Another dependency wants the caller: it would be looked up twice.
            raise TypeError(f"{path}: a dependency of this route takes the caller; name it in the endpoint")


def _runs_in_the_threadpool(endpoint: Callable[..., Any]) -> bool:
    return not (
        inspect.iscoroutinefunction(endpoint)
        or inspect.isgeneratorfunction(endpoint)
        or inspect.isasyncgenfunction(endpoint)
    )


def _takes_the_request_session(endpoint: Callable[..., Any]) -> bool:
    from fastapi.dependencies.utils import get_typed_signature

    parameters = get_typed_signature(endpoint).parameters.values()
    return any(_depends_on_call(parameter.annotation, get_session) for parameter in parameters)


def _caller_parameter(endpoint: Callable[..., Any]) -> str | None:
    from fastapi.dependencies.utils import get_typed_signature

    for name, parameter in get_typed_signature(endpoint).parameters.items():
        if _depends_on_call(parameter.annotation, get_caller):
            return name
    return None


def _depends_on_call(annotation: Any, call: Callable[..., Any]) -> bool:
    return get_origin(annotation) is Annotated and any(
        isinstance(meta, Depends) and meta.dependency is call for meta in get_args(annotation)[1:]
    )


def _rate_limit_of(dependency: Any) -> RateLimit | None:
    return getattr(getattr(dependency, "dependency", None), "rate_limit", None)


def _depends_on(dependant: Any, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _in_one_step(
    endpoint: Callable[..., Any], caller: str | None, limits: list[RateLimit]
) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the parameters through __wrapped__
    async def endpoint_and_its_commit(**values: Any) -> Any:
        step = functools.partial(_call_and_end, endpoint, values, caller, limits)
        return await anyio.to_thread.run_sync(step)

    if caller is not None:
        from fastapi.dependencies.utils import get_typed_signature

        signature = get_typed_signature(endpoint)
        headers = inspect.Parameter(
            HEADERS_PARAMETER,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[CallerHeaders, Depends(caller_headers)],
        )
        parameters = [p for name, p in signature.parameters.items() if name != caller]
        endpoint_and_its_commit.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*parameters, headers]
        )
    return endpoint_and_its_commit


def _call_and_end(
    endpoint: Callable[..., Any], values: dict[str, Any], caller: str | None, limits: list[RateLimit]
) -> Any:
    sessions = [value for value in values.values() if isinstance(value, Session)]
    try:
        if caller is not None:
            headers: CallerHeaders = values.pop(HEADERS_PARAMETER)
            values[caller] = read_caller(headers, _session_for_the_key(headers, sessions))
            for limit in limits:
                limit.enforce(headers.request, values[caller])
        result = endpoint(**values)
    except BaseException:
        for session in sessions:
            end_session(session, failed=True)
        raise
    for session in sessions:
        end_session(session, failed=False)  # get_session sees it ended, and takes no step of its own
    return result


def _session_for_the_key(headers: CallerHeaders, sessions: list[Session]) -> Session | None:
    """The request's own session, where reading the key in it costs nothing: a GET's only reads, and
    on PostgreSQL a write's transaction may begin with a read. On SQLite a write's first statement
    takes the file's write lock (BEGIN IMMEDIATE), so its key is read in a session of its own."""
    if not sessions:
        return None
    if headers.request.method == "GET" or sessions[0].get_bind().dialect.name != "sqlite":
        return sessions[0]
    return None


def caller_failure(request: Any) -> AuthenticationFailed | None:
    """Why the caller of a request that failed validation is refused, if it is (blocking). In a
    session of its own: the request's has ended."""
    found = request.headers
    headers = CallerHeaders(request, found.get("authorization"), found.get("openai-project"))
    try:
        read_caller(headers)
    except AuthenticationFailed as refused:
        return refused
    return None


def reads_caller_in_step(request: Any) -> bool:
    return bool(getattr(request.scope.get("route"), "reads_caller_in_step", False))
