"""One error base class, rendered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


class TuneryError(Exception):
    status_code = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


class InvalidRequest(TuneryError):
    status_code = 400


class AuthenticationFailed(TuneryError):
    status_code = 401
    code = "invalid_api_key"


class NotFound(TuneryError):
    status_code = 404


class RateLimited(TuneryError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerBusy(TuneryError):
    """The database did not serve the request within DB_TIMEOUT_SECONDS: an answer now, not a hang."""

    status_code = 503
    type = "server_error"
    code = "server_busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(TuneryError):
    status_code = 413
    code = "file_too_large"


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


_LOCATIONS = {"body", "query", "path", "header", "form"}
# Pydantic puts the union member it tried into the location ("n_epochs", "literal['auto']"): not a field.
_UNION_MEMBER = re.compile(r"[\[\]'(),]|^(int|float|str|bool|list|dict|none)$|-")


def describe_validation_error(errors: Sequence[Any]) -> tuple[str | None, str]:
    """The field (dotted) and a message for the most useful of pydantic's errors."""
    if not errors:
        return None, "Invalid request."
    # Of a union's errors, the one about the literal ("auto") says least about what went wrong.
    error = next((e for e in errors if e.get("type") != "literal_error"), errors[0])
    parts = [
        str(p) for p in error.get("loc", ()) if str(p) not in _LOCATIONS and not _UNION_MEMBER.search(str(p))
    ]
    param = ".".join(parts) or None
    kind = error.get("type")
    if kind == "extra_forbidden":
        return param, f"Unrecognized request argument supplied: {param}"
    if kind == "json_invalid":
        return None, "The request body is not valid JSON."
    if kind == "missing":
        return param, f"Missing required parameter: {param}"
    return param, f"Invalid value for {param}: {error.get('msg')}" if param else str(error.get("msg"))


def model_not_found(model_id: str, param: str | None = None) -> NotFound:
    """The one answer for a model that does not exist and one the caller may not see."""
    return NotFound(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        param=param,
        code="model_not_found",
    )
