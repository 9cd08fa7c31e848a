"""The base of every JSON request body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 400 naming it, not a silent default,
    and NUL characters anywhere (Postgres can store them in neither text nor JSONB)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _refuse_nul(data)
        return data


def _refuse_nul(value: Any, where: str = "") -> None:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'the body'} must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{where}.{index}")
