"""Refuse NUL characters in URLs before they reach a query: Postgres cannot store or compare them
(text and JSONB both), so `?after=%00` would otherwise be a 500 instead of a 400."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            payload = json.dumps(
                error_body("The URL contains a NUL character (%00).", type="invalid_request_error")
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    return b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(
        scope.get("query_string", b"")
    )
