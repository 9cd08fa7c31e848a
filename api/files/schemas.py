"""File objects as OpenAI's SDK types them (openai.types.FileObject)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from api.response_models import OmitsEmptyOptionals
from api.tables import File

FilePurpose = Literal["fine-tune", "fine-tune-results", "evals"]
FileStatus = Literal["uploaded", "processed", "error"]


class FileObject(OmitsEmptyOptionals):
    omitted_when_none = ("status_details", "expires_at")

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: FileStatus
    status_details: str | None = None
    expires_at: int | None = None

    @classmethod
    def of(cls, row: File) -> FileObject:
        return cls(
            id=row.id,
            bytes=row.bytes,
            created_at=row.created_at,
            filename=row.filename,
            purpose=row.purpose,  # type: ignore[arg-type]
            status=row.status,  # type: ignore[arg-type]
            status_details=row.status_details,
            expires_at=row.expires_at,
        )


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
