"""A directory (an artifact, a checkpoint) stored as the objects under one prefix.

On the local backend the prefix is the directory itself and nothing here copies: the callers move
directories into place (worker/jobs/place.py). On a remote one a directory goes up file by file before
the row that makes it visible is written, and comes down into a neighbour renamed into place whole.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from api.storage import ObjectStore


def put_directory(store: ObjectStore, prefix: str, source: Path) -> int:
    """Upload every file under `source` to `prefix`/...; returns the bytes sent."""
    sent = 0
    for parent, _dirs, files in os.walk(source):
        for name in sorted(files):
            path = Path(parent, name)
            if not path.is_file() or path.is_symlink():
                continue
            store.put_file(f"{prefix.rstrip('/')}/{path.relative_to(source).as_posix()}", path)
            sent += path.stat().st_size
    return sent


def get_directory(store: ObjectStore, prefix: str, target: Path) -> bool:
    """Download the objects under `prefix` to the directory `target` (replacing it); False if there
    are none."""
    folder = prefix.rstrip("/") + "/"
    found = list(store.objects(folder))
    if not found:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        for stored in found:
            store.get_file(stored.key, partial / stored.key[len(folder) :])
        if target.exists():
            aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


def has_directory(store: ObjectStore, prefix: str) -> bool:
    return next(iter(store.objects(prefix.rstrip("/") + "/")), None) is not None
