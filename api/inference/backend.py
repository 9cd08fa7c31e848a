"""The API's client of the inference backend: forwards a request over HTTP and streams the answer back.

The backend speaks OpenAI's routes (the embedded one, and vLLM's OpenAI server), so forwarding is
passing bytes: the answer's JSON or server-sent events reach the client as the backend wrote them,
chunk by chunk, never whole in memory. When the client goes away, the forward is cancelled and its
connection closed, which the backend sees and answers by stopping the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from api.errors import TuneryError, error_body

T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.25
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left: no one reads it, logs do


class BackendUnavailable(TuneryError):
    status_code = 503
    type = "server_error"
    code = "inference_unavailable"


class _ClientGone(Exception):
    pass


class InferenceBackend:
    def __init__(self, base_url: str, hint: str | None = None) -> None:
        self.base_url = base_url
        self.hint = hint or (
            "Start it with `tunery inference` (`tunery serve` starts it), or set TUNERY_INFERENCE_URL."
        )

    async def forward(
        self,
        request: Request,
        path: str,
        payload: dict[str, Any],
        stream: bool,
        on_not_found: Callable[[], Awaitable[None]] | None = None,
    ) -> Response:
        """Send `payload` to `path` and pass the answer back. `on_not_found`: run when the backend answers
        404 (nothing of the answer is sent yet), then the request is sent once more."""
        # A client per request: its connection is the request's, so closing it is how a cancel reaches
        # the backend, and no pool outlives the event loop that made it (tests start many).
        client = httpx.AsyncClient(
            base_url=f"{self.base_url}/v1",
            # No read timeout: a long answer is slow by nature, and a client that gives up cancels it.
            timeout=httpx.Timeout(connect=5.0, read=None, write=30.0, pool=5.0),
        )
        try:
            upstream = await self._send(request, client, path, payload)
            if upstream.status_code == 404 and on_not_found is not None:
                await upstream.aclose()
                await on_not_found()
                upstream = await self._send(request, client, path, payload)
        except _ClientGone:
            await client.aclose()
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except BaseException:
            await client.aclose()
            raise
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("retry-after", "cache-control")}
        if stream and upstream.status_code == 200:
            return _ForwardedStream(upstream, client, headers)
        try:
            body = await _unless_disconnected(request, upstream.aread())
        except _ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        finally:
            await upstream.aclose()
            await client.aclose()
        return Response(
            body, status_code=upstream.status_code, media_type="application/json", headers=headers
        )

    async def _send(
        self, request: Request, client: httpx.AsyncClient, path: str, payload: dict[str, Any]
    ) -> httpx.Response:
        try:
            return await _unless_disconnected(
                request, client.send(client.build_request("POST", path, json=payload), stream=True)
            )
        except httpx.HTTPError as error:
            raise BackendUnavailable(
                f"The inference backend at {self.base_url} does not answer ({type(error).__name__}). "
                + self.hint
            ) from None


class _ForwardedStream(StreamingResponse):
    """The backend's events, passed on as they come; the forward is closed however the response ends
    (finished, the client gone mid-stream, or gone before the first byte, when the body never starts)."""

    def __init__(self, upstream: httpx.Response, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        super().__init__(_relay(upstream), media_type="text/event-stream", headers=headers)
        self.upstream = upstream
        self.client = client

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()
            await self.client.aclose()


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        # Mid-stream the status is sent already: an `error` event is what the SDK raises on.
        message = "The inference backend went away in the middle of the answer."
        yield f"data: {json.dumps(error_body(message, type='server_error'))}\n\n".encode()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or _ClientGone (and `work` cancelled) once the client has disconnected."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise _ClientGone
