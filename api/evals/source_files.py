"""The uploaded files a run reads its items from: the project's own, of purpose evals or fine-tune."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.errors import InvalidRequest
from api.files import service as files
from api.files.storage import FileStorage
from api.tables import File

SOURCE_PURPOSES = ("evals", "fine-tune")


def source_file(session: Session, caller: Caller, file_id: str, param: str) -> File:
    row = files.in_project(session, caller.project.pk, file_id)
    if row is None:
        raise InvalidRequest(f"invalid {param}: no such file {file_id}", param=param, code="file_not_found")
    if row.purpose not in SOURCE_PURPOSES:
        raise InvalidRequest(
            f"invalid {param}: file {file_id} has purpose {row.purpose!r}, not 'evals' or 'fine-tune'",
            param=param,
            code="invalid_file_purpose",
        )
    return row


def source_lines(storage: FileStorage, row: File) -> list[bytes]:
    """The file's lines, from the data directory or the bucket (a network call: no transaction
    may be open around it)."""
    return b"".join(storage.read(row.storage_key)).splitlines()
