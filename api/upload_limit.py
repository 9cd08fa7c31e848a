"""Refuse oversized request bodies before they are read, stop reading ones that lie, and refuse bodies
that were cut off.

A declared Content-Length over the limit is answered 413 at once, without reading a byte; a body
that streams past the limit (chunked, or a false Content-Length) is cut off at the limit. Either
way an upload never costs more than the limit in disk, and memory stays bounded because Starlette
spools multipart parts to disk.

A body that ends early is answered 400: a multipart body without its closing boundary, or fewer
bytes than its Content-Length declares. The multipart parser accepts the first silently, dropping the
unfinished part, so an upload cut mid-file would be answered "Missing required parameter: file", which
sends its author looking for the wrong mistake.
"""

from __future__ import annotations

import json
from typing import Any

from python_multipart.multipart import parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

# Room for the multipart envelope (boundaries, part headers, the purpose field) around the file.
ENVELOPE_BYTES = 64 * 1024


class _Refused(Exception):
    """The body is refused with this status and error; raised out of the app's receive."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body


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
            await _send_error(send, _too_large(self.max_body_bytes))
            return
        boundary = _multipart_boundary(scope)
        # The close delimiter; a body that is only that (an empty form) has no CRLF before it.
        closing = b"\r\n--" + boundary + b"--" if boundary else None
        tail = b"\r\n"  # the end of what came so far, so a delimiter split across messages is seen
        closed = False
        received = 0
        refusal: _Refused | None = None
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, tail, closed, refusal
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                refusal = _too_large(self.max_body_bytes)
                raise refusal
            if closing is not None and not closed:
                # After the close delimiter comes only the epilogue, which parsers ignore.
                window = tail + chunk
                closed = closing in window
                tail = window[-(len(closing) - 1) :]
            if not message.get("more_body", False):
                refusal = _cut_off(closing if not closed else None, received, declared)
                if refusal is not None:
                    raise refusal
            return message

        async def guarded_send(message: Message) -> None:
            # The form parser turns our exception into its own 400; the client must see ours.
            nonlocal refused
            if refusal is not None:
                if not refused:
                    refused = True
                    await _send_error(send, refusal)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _Refused as exc:
            if not refused:
                await _send_error(send, exc)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _multipart_boundary(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            kind, options = parse_options_header(value)
            if kind.lower() == b"multipart/form-data":
                return options.get(b"boundary") or None
    return None


def _too_large(limit: int) -> _Refused:
    return _Refused(
        413,
        error_body(
            f"The request body is larger than the limit of {limit - ENVELOPE_BYTES} bytes "
            "(TUNERY_MAX_UPLOAD_BYTES).",
            type="invalid_request_error",
            param="file",
            code="file_too_large",
        ),
    )


def _cut_off(missing_closing: bytes | None, received: int, declared: int | None) -> _Refused | None:
    """The refusal of a body that ended early, or None when it is whole."""
    if declared is not None and received < declared:
        message = (
            f"The request body ended after {received} of the {declared} bytes its Content-Length declares"
        )
    elif missing_closing is not None:
        message = (
            f"The multipart body ended without its closing boundary ({missing_closing.strip().decode()!r})"
        )
    else:
        return None
    return _Refused(
        400,
        error_body(
            message + ": the upload was cut off; send it again.",
            type="invalid_request_error",
            param="file",
            code="truncated_body",
        ),
    )


async def _send_error(send: Send, refusal: _Refused) -> None:
    payload = json.dumps(refusal.body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
