"""Request latency by route and status, recorded by a plain ASGI middleware (streamed answers included).

With PROMETHEUS_MULTIPROC_DIR set (before start), each API process writes its samples to files there
and a scrape of any process sums them all.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_DURATION = Histogram(
    "tunery_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status code.",
    ["route", "method", "status"],
)


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The template (/v1/fine_tuning/jobs/{job_id}), not the path: one series per route.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUEST_DURATION.labels(route, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
