"""Refuse oversized request bodies before they are read, and stop reading ones that lie.

A declared Content-Length over the limit is answered 413 at once, without reading a byte; a body
that streams past the limit (chunked, or a false Content-Length) is cut off at the limit. Either
way an upload never costs more than the limit in disk, and memory stays bounded because Starlette
spools multipart parts to disk.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

# Room for the multipart envelope (boundaries, part headers, the purpose field) around the file.
ENVELOPE_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


class UploadLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes + ENVELOPE_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes)
            return
        received = 0
        exceeded = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The form parser turns our exception into its own 400; the client must see a 413.
            nonlocal refused
            if exceeded:
                if not refused:
                    refused = True
                    await _too_large(send, self.max_body_bytes)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                await _too_large(send, self.max_body_bytes)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = error_body(
        f"The request body is larger than the limit of {limit - ENVELOPE_BYTES} bytes "
        "(TUNERY_MAX_UPLOAD_BYTES).",
        type="invalid_request_error",
        param="file",
        code="file_too_large",
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
