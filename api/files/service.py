"""Uploading, listing and reading files. Uploads are validated before they are published."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from api import clock
from api.auth.service import Caller
from api.errors import InvalidRequest, NotFound, PayloadTooLarge
from api.files import repository
from api.files.storage import FileStorage, StagedBlob, TooLarge
from api.files.validation import check_lines
from api.ids import new_id
from api.tables import File, Project

UPLOAD_PURPOSES = ("fine-tune",)
RESULTS_PURPOSE = "fine-tune-results"
# OpenAI's bounds on expires_after.seconds: an hour to thirty days.
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600


def upload(
    session: Session,
    storage: FileStorage,
    project: Project,
    *,
    stream: BinaryIO,
    filename: str,
    purpose: str,
    max_bytes: int,
    expires_after_seconds: int | None = None,
) -> File:
    if expires_after_seconds is not None and not (
        MIN_EXPIRY_SECONDS <= expires_after_seconds <= MAX_EXPIRY_SECONDS
    ):
        raise InvalidRequest(
            f"expires_after.seconds must be between {MIN_EXPIRY_SECONDS} and {MAX_EXPIRY_SECONDS}",
            param="expires_after.seconds",
        )
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}, not {purpose!r}", param="purpose"
        )
    try:
        blob = storage.stage(stream, max_bytes)
    except TooLarge:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {max_bytes} bytes (TUNERY_MAX_UPLOAD_BYTES).", param="file"
        ) from None
    try:
        _check_fine_tune_file(blob)
        row = _publish(session, storage, blob, project.pk, Path(filename or "upload.jsonl").name, purpose)
        if expires_after_seconds is not None:
            row.expires_at = row.created_at + expires_after_seconds
        return row
    except BaseException:
        storage.discard(blob)
        raise


def store_result(session: Session, storage: FileStorage, project_pk: int, source: Path) -> File:
    """Keep a file the worker produced (the step metrics CSV) as a file of the job's project."""
    blob = storage.stage_copy(source)
    try:
        return _publish(session, storage, blob, project_pk, source.name, RESULTS_PURPOSE)
    except BaseException:
        storage.discard(blob)
        raise


def _publish(
    session: Session, storage: FileStorage, blob: StagedBlob, project_pk: int, filename: str, purpose: str
) -> File:
    """Record a staged blob as a file and move it under its key; the caller discards it on failure."""
    file_id = new_id("file-")
    row = File(
        id=file_id,
        project_pk=project_pk,
        # Control characters (NUL above all) cannot be stored and only confuse whoever reads them.
        filename="".join(c for c in filename if c.isprintable())[:512] or "upload.jsonl",
        purpose=purpose,
        bytes=blob.bytes,
        sha256=blob.sha256,
        status="processed",
        status_details=None,
        storage_key=f"{project_pk}/{file_id}",
        created_at=clock.now(),
    )
    repository.add(session, row)
    storage.publish(blob, row.storage_key)
    return row


def get(session: Session, caller: Caller, file_id: str) -> File:
    row = repository.get(session, caller.scope, file_id)
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    return row


def delete(session: Session, caller: Caller, file_id: str) -> File:
    """Remove the row; the caller removes the bytes once that is committed."""
    row = get(session, caller, file_id)
    repository.delete(session, row)
    return row


def list_page(
    session: Session, caller: Caller, *, purpose: str | None, after: str | None, limit: int, order: str
) -> tuple[list[File], bool]:
    cursor = get(session, caller, after) if after else None
    rows = repository.page(
        session, caller.scope, purpose=purpose, after=cursor, limit=limit, newest_first=order == "desc"
    )
    return rows[:limit], len(rows) > limit


def _check_fine_tune_file(blob: StagedBlob) -> None:
    with blob.path.open("rb") as lines:
        report = check_lines(lines)
    if not report.ok:
        raise InvalidRequest(
            f"Invalid file format for fine-tuning: {report.summary()}",
            param="file",
            code="invalid_file_format",
        )
    if report.n_examples == 0:
        raise InvalidRequest(
            "Invalid file format for fine-tuning: the file holds no examples (one JSON object per line).",
            param="file",
            code="invalid_file_format",
        )
