"""Putting files where they are kept, without copying when the filesystem allows it.

The trainer writes under the job's work directory and the artifacts, uploads and work directories all
live under TUNERY_DATA_DIR, normally one filesystem: there a directory of any size moves with one
rename, and a file is shared with one hard link. Across filesystems (an operator mounted one of them
elsewhere) both fall back to a copy, still done before any transaction records the result.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from api.config import Settings
from api.fine_tuning import artifacts
from api.storage import store_of
from api.storage.directories import put_directory

# Errors that mean "no rename or link between these two places", not "something is wrong".
_ACROSS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)


def move_directory(source: Path, target: Path) -> None:
    """Put the directory `source` at `target`, replacing any directory there; `source` is gone after.

    Readers see the old directory or the new one, never a half-written one: a copy goes to a
    neighbour first and is renamed into place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = _aside(target)
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno not in _ACROSS:
            raise
        partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        shutil.copytree(source, partial)
        os.replace(partial, target)
        shutil.rmtree(source, ignore_errors=True)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def store_artifact(settings: Settings, source: Path, target: Path) -> None:
    """Keep the directory the trainer wrote as the artifact at `target`: moved into place on the local
    backend; on S3 uploaded under its key (the work directory's copy goes when the job ends)."""
    store = store_of(settings)
    if not store.remote:
        move_directory(source, target)
        return
    put_directory(store, artifacts.key_of(settings, target), source)


def link_file(source: Path, target: Path) -> None:
    """Make `target` a hard link to `source` (a copy across filesystems), replacing any file there."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in _ACROSS:
            raise
        shutil.copyfile(source, target)


def _aside(target: Path) -> Path | None:
    """Rename an existing `target` out of the way (a rename can't replace a directory that has files)."""
    if not target.exists():
        return None
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, aside)
    return aside
