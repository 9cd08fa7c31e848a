"""The base of response objects whose optional fields OpenAI's spec leaves out when they are empty.

OpenAI's published OpenAPI document marks some fields optional rather than nullable (a file's
`expires_at` and `status_details`, a checkpoint's validation metrics): they are absent when they
have no value. Strict clients and generated types read `null` there as a wrong type, so these
fields are dropped from the JSON when None; every other field keeps its null.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer


class OmitsEmptyOptionals(BaseModel):
    omitted_when_none: ClassVar[tuple[str, ...]] = ()
    """The fields left out of the JSON when they are None."""

    @model_serializer(mode="wrap")
    def _omit_empty_optionals(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {
            key: value
            for key, value in data.items()
            if value is not None or key not in self.omitted_when_none
        }
