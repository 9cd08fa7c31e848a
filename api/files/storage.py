"""File storage on a local (or shared) directory.

Writes go to a temporary name and are published with one atomic rename, so a half-written
upload never exists under a real key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class StagedBlob:
    """Bytes written under a temporary name, not yet visible under a key."""

    path: Path
    bytes: int
    sha256: str


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._staging = root / ".staging"

    def path(self, key: str) -> Path:
        return self.root / key

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
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(blob.path, target)

    def discard(self, blob: StagedBlob) -> None:
        blob.path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def copy_to(self, key: str, destination: Path) -> None:
        shutil.copyfile(self.path(key), destination)
