"""The local backend: keys are paths under the data directory (TUNERY_STORAGE_URL unset)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from api.storage import CHUNK, StoredObject


class LocalStore:
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        return None  # the data directory is made where it is needed

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key outside the data directory: {key!r}")
        return target

    def put_file(self, key: str, source: Path) -> None:
        _copy_into_place(source, self.path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        partial.write_bytes(data)
        os.replace(partial, target)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def get_file(self, key: str, destination: Path) -> None:
        _copy_into_place(self.path(key), destination)

    def stat(self, key: str) -> StoredObject | None:
        try:
            info = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not self.path(key).is_file():
            return None
        return StoredObject(key, info.st_size, f'"{info.st_size:x}-{info.st_mtime_ns:x}"', info.st_mtime)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with self.path(key).open("rb") as stream:
            stream.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = stream.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def objects(self, prefix: str) -> Iterator[StoredObject]:
        folder, _, _ = prefix.rpartition("/")
        base = self.path(folder) if folder else self.root
        if not base.is_dir():
            return
        keys = [
            Path(parent, name).relative_to(self.root).as_posix()
            for parent, _dirs, files in os.walk(base)
            for name in files
        ]
        for key in sorted(k for k in keys if k.startswith(prefix)):
            if (found := self.stat(key)) is not None:
                yield found

    def children(self, prefix: str) -> list[str]:
        folder = self.path(prefix.rstrip("/"))
        return sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder = self.path(prefix.rstrip("/"))
        if not folder.is_dir():
            return 0
        count = sum(len(files) for _, _, files in os.walk(folder))
        shutil.rmtree(folder, ignore_errors=True)
        return count

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        return 0  # a local write is one rename: there is nothing half-uploaded to end


def _copy_into_place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
