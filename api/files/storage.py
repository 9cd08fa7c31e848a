"""File storage: uploads and result files, staged on local disk, kept in the object store.

An upload is staged under a temporary name on this process's disk (counted, hashed and checked
there), and only then published under its key: on the local backend with one atomic rename, on S3
with a multipart upload from the staged file (bounded memory; the object appears only once whole).
A refused upload never reaches its key, so it leaves nothing in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from api.config import Settings
from api.storage import ObjectStore, StoredObject, store_of

CHUNK = 1024 * 1024
KEY_PREFIX = "files/"


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class StagedBlob:
    """Bytes written under a temporary name, not yet visible under a key."""

    path: Path
    bytes: int
    sha256: str


class FileStorage:
    def __init__(self, root: Path, store: ObjectStore | None = None) -> None:
        """`root`: where uploads are staged, and where files live when `store` is None (local)."""
        self.root = root
        self.store = store if store is not None and store.remote else None
        self._staging = root / ".staging"

    @classmethod
    def of(cls, settings: Settings) -> FileStorage:
        return cls(settings.files_path, store_of(settings))

    def local_path(self, key: str) -> Path | None:
        """The file itself when it lives on this machine's disk (the local backend), else None."""
        return self.root / key if self.store is None else None

    def sweep_staging(self, older_than_seconds: float = 3600) -> int:
        """Remove staged blobs a killed process left behind; an hour is far longer than an upload
        is staged, so nothing in flight is touched. Returns how many went."""
        if not self._staging.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for leftover in self._staging.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    def stage(self, source: BinaryIO, max_bytes: int) -> StagedBlob:
        """Copy a stream to a temporary file in bounded memory, counting and hashing as it goes."""
        self._staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self._staging)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return StagedBlob(path=Path(name), bytes=size, sha256=digest.hexdigest())

    def stage_copy(self, source: Path) -> StagedBlob:
        with source.open("rb") as stream:
            return self.stage(stream, max_bytes=2**63)

    def publish(self, blob: StagedBlob, key: str) -> None:
        """Put a staged blob under its key (a network call on S3: never inside a transaction)."""
        if self.store is None:
            target = self.root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(blob.path, target)
            return
        try:
            self.store.put_file(KEY_PREFIX + key, blob.path)
        finally:
            blob.path.unlink(missing_ok=True)

    def discard(self, blob: StagedBlob) -> None:
        blob.path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        if self.store is None:
            (self.root / key).unlink(missing_ok=True)
        else:
            self.store.delete(KEY_PREFIX + key)

    def stat(self, key: str) -> StoredObject | None:
        if self.store is None:
            path = self.root / key
            if not path.is_file():
                return None
            info = path.stat()
            return StoredObject(key, info.st_size, f'"{info.st_size:x}-{info.st_mtime_ns:x}"', info.st_mtime)
        return self.store.stat(KEY_PREFIX + key)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes from `start` to `end` (exclusive), streamed from wherever it lives."""
        if self.store is not None:
            yield from self.store.read(KEY_PREFIX + key, start, end)
            return
        with (self.root / key).open("rb") as stream:
            stream.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = stream.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                left = None if left is None else left - len(chunk)
                yield chunk

    def copy_to(self, key: str, destination: Path) -> None:
        """Put the file at `destination` on this machine (a worker staging a job's data)."""
        if self.store is None:
            shutil.copyfile(self.root / key, destination)
        else:
            self.store.get_file(KEY_PREFIX + key, destination)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A path to the file's bytes on this machine for as long as the block runs: the file itself on
        the local backend, a staged download of it otherwise."""
        if self.store is None:
            yield self.root / key
            return
        self._staging.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._staging)
        os.close(fd)
        try:
            self.store.get_file(KEY_PREFIX + key, Path(name))
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)
