"""Uploading, listing and reading files. Uploads are validated before they are published."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from api import clock
from api.auth.service import Caller
from api.config import Settings
from api.db import after_commit
from api.errors import InvalidRequest, NotFound, PayloadTooLarge
from api.files import repository
from api.files.checking import check_file
from api.files.storage import FileStorage, StagedBlob, TooLarge
from api.ids import new_id
from api.tables import File, Project

UPLOAD_PURPOSES = ("fine-tune", "evals")
# An evals file is lines of items (api/evals/items.py); a line that is no JSON object is an errored item of
# the run that reads it, not a refused upload.
EVALS_PURPOSE = "evals"
RESULTS_PURPOSE = "fine-tune-results"
# OpenAI's bounds on expires_after.seconds: an hour to thirty days.
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600
DEFAULT_FILENAME = "upload.jsonl"
# Most filesystems' limit, so a name shown back can be saved as it is.
MAX_FILENAME_CHARS = 255


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may cost: its bytes, its longest line, its lines (the TUNERY_MAX_* settings)."""

    max_bytes: int
    max_line_bytes: int
    max_lines: int

    @classmethod
    def of(cls, settings: Settings) -> UploadLimits:
        return cls(settings.max_upload_bytes, settings.max_line_bytes, settings.max_lines)


def upload(
    session: Session,
    storage: FileStorage,
    project: Project,
    *,
    stream: BinaryIO,
    filename: str,
    purpose: str,
    limits: UploadLimits,
    expires_after_seconds: int | None = None,
) -> File:
    """Stage, validate and publish an upload; a refused one leaves nothing behind (row, blob, staging)."""
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
        blob = storage.stage(stream, limits.max_bytes)
    except TooLarge:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {limits.max_bytes} bytes (TUNERY_MAX_UPLOAD_BYTES).",
            param="file",
        ) from None
    try:
        if purpose != EVALS_PURPOSE:
            _check_fine_tune_file(blob, limits)
    except BaseException:
        storage.discard(blob)
        raise
    # Published before the request's session opens its transaction (its first query is the row's
    # insert): on S3 a multipart upload, which no transaction waits for.
    stored = _put(storage, blob, project.pk)
    try:
        row = _record(session, stored, project.pk, filename, purpose)
    except BaseException:
        storage.delete(stored.storage_key)
        raise
    if expires_after_seconds is not None:
        row.expires_at = row.created_at + expires_after_seconds
    return row


@dataclass(frozen=True)
class StoredFile:
    """Bytes already under their file's key, not yet recorded: no row names them."""

    file_id: str
    storage_key: str
    bytes: int
    sha256: str


def stage_result(storage: FileStorage, project_pk: int, source: Path) -> StoredFile:
    """Put a file the worker produced (the step metrics CSV) under a key of the job's project.

    The copy (an upload, on S3) happens here, before the transaction that records the file
    (`store_result`): no file work inside a transaction. The caller withdraws it if that transaction
    never comes; a worker killed in between leaves an object without a row, which the storage sweep
    removes (worker/storage_sweep.py).
    """
    return _put(storage, storage.stage_copy(source), project_pk)


def withdraw_result(storage: FileStorage, stored: StoredFile) -> None:
    storage.delete(stored.storage_key)


def store_result(session: Session, project_pk: int, stored: StoredFile, filename: str) -> File:
    """Record a stored result file as a file of the job's project: a row only."""
    return _record(session, stored, project_pk, filename, RESULTS_PURPOSE)


def _put(storage: FileStorage, blob: StagedBlob, project_pk: int) -> StoredFile:
    """Move a staged blob under a new file's key (the key is the project and the file id, never the
    client's file name); the blob is gone either way."""
    file_id = new_id("file-")
    key = f"{project_pk}/{file_id}"
    try:
        storage.publish(blob, key)
    finally:
        storage.discard(blob)
    return StoredFile(file_id, key, blob.bytes, blob.sha256)


def _record(session: Session, stored: StoredFile, project_pk: int, filename: str, purpose: str) -> File:
    row = File(
        id=stored.file_id,
        project_pk=project_pk,
        filename=safe_filename(filename),
        purpose=purpose,
        bytes=stored.bytes,
        sha256=stored.sha256,
        status="processed",
        status_details=None,
        storage_key=stored.storage_key,
        created_at=clock.now(),
    )
    repository.add(session, row)
    return row


def safe_filename(name: str) -> str:
    """The base name of a client's file name: what is shown back, and sent as Content-Disposition.

    Clients send paths ("../../etc/passwd", "C:\\data\\train.jsonl"): only the last part is kept,
    whichever the separator, so a download never names a path. Control characters go (NUL above all,
    which Postgres can't store; CR and LF, which would split a header; bidi overrides, which disguise a
    name), and a long name is cut keeping its extension.
    """
    printable = "".join(c for c in name if c.isprintable())
    base = re.split(r"[/\\]", printable)[-1].strip()
    if base in ("", ".", ".."):
        return DEFAULT_FILENAME
    if len(base) > MAX_FILENAME_CHARS:
        suffix = Path(base).suffix if len(Path(base).suffix) <= 16 else ""
        base = base[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return base


def in_project(session: Session, project_pk: int, file_id: str) -> File | None:
    """A file of one project (a job's files are always its own project's), or None."""
    return repository.get(session, project_pk, file_id)


def get(session: Session, caller: Caller, file_id: str) -> File:
    row = repository.get(session, caller.scope, file_id)
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    return row


def delete(session: Session, storage: FileStorage, caller: Caller, file_id: str) -> File:
    """Remove the row, and the bytes once that is committed: a blob without a row is garbage, a row
    without a blob would be a 500."""
    row = get(session, caller, file_id)
    repository.delete(session, row)
    key = row.storage_key
    after_commit(session, lambda: storage.delete(key))
    return row


def list_page(
    session: Session, caller: Caller, *, purpose: str | None, after: str | None, limit: int, order: str
) -> tuple[list[File], bool]:
    cursor = get(session, caller, after) if after else None
    rows = repository.page(
        session, caller.scope, purpose=purpose, after=cursor, limit=limit, newest_first=order == "desc"
    )
    return rows[:limit], len(rows) > limit


def _check_fine_tune_file(blob: StagedBlob, limits: UploadLimits) -> None:
    report = check_file(blob.path, max_line_bytes=limits.max_line_bytes, max_lines=limits.max_lines)
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
