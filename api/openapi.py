"""The OpenAPI document says what the API really answers: OpenAI-shaped errors, not FastAPI's 422.

Request-validation errors are answered 400 (api/app.py), so the generated 422 entries are replaced,
and every operation documents the error statuses any request can meet. The fuzz tests hold the
API to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
COMMON_ERRORS = {
    "400": "Invalid request: the message names the parameter.",
    "401": "Missing, wrong or revoked API key.",
    "404": "No such object in the caller's project.",
    "413": "Request body over the upload limit.",
    "429": "Too many uploads or job creations by this key this minute; see Retry-After.",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _document_errors(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, model in (("ErrorDetail", ErrorDetail), ("ErrorResponse", ErrorResponse)):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[name] = schema
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in COMMON_ERRORS.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": ERROR_REF}}},
                )
