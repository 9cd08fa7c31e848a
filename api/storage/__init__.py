"""Where uploaded files, result files, artifacts and checkpoints live: one interface, two backends.

- the local directory (TUNERY_STORAGE_URL unset, the embedded default): keys are paths under
  TUNERY_DATA_DIR, which every process of one machine (or a shared mount) sees;
- an S3-compatible bucket (`s3://bucket/prefix`): every machine reaches it, and DATA_DIR is only each
  process's own scratch (a worker's job directories) and staging (an API's uploads being checked).

Keys are `/`-separated: `files/<project>/<file>`, `artifacts/<job>/adapter/...`,
`artifacts/<job>/checkpoints/step-N/...`, `artifacts/<job>/merged/...`, `jobs/<job>/...` (the
resumable checkpoints a lost worker's job resumes from). A store call is a file copy or a network
call: never inside a database transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from api.config import Settings

CHUNK = 1024 * 1024


class StorageUnreachable(Exception):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    """Changes whenever the bytes do (S3's ETag; size and mtime for a local file)."""
    modified: float
    """Unix seconds of the last write."""


class ObjectStore(Protocol):
    remote: bool
    """False for the local directory: keys are also paths under the data directory."""

    def describe(self) -> str: ...

    def check(self) -> None:
        """Raise StorageUnreachable, naming TUNERY_STORAGE_URL, unless the store answers."""

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under `key` (in parts, bounded memory); readers never see half of it."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """A small object (a marker, a record) stored whole."""

    def get_bytes(self, key: str) -> bytes | None:
        """A small object's bytes; None if there is none."""

    def get_file(self, key: str, destination: Path) -> None:
        """Copy the object to a local file (written to a neighbour, then renamed into place)."""

    def stat(self, key: str) -> StoredObject | None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes from `start` to `end` (exclusive; its end when None), CHUNK at a time."""

    def objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, in key order."""

    def children(self, prefix: str) -> list[str]:
        """The names one level below `prefix` (a folder's entries), files and folders alike."""

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` (a folder); returns how many went."""

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        """End the multipart uploads a killed process left open (their parts cost storage)."""


def store_of(settings: Settings) -> ObjectStore:
    """The store TUNERY_STORAGE_URL names, one per process (a forked worker makes its own client)."""
    return _open(settings.storage_url, settings.s3_endpoint_url, str(settings.data_path), os.getpid())


@lru_cache(maxsize=8)
def _open(url: str | None, endpoint: str | None, data_dir: str, _pid: int) -> ObjectStore:
    if url is None:
        from api.storage.local import LocalStore

        return LocalStore(Path(data_dir))
    from api.storage.s3 import S3Store

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return S3Store(bucket, prefix, endpoint)
