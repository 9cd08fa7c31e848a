"""Where a job's artifacts live, shared by the API (serving, downloads) and the worker (storing).

An artifact is stored as the directory the trainer wrote, never as an archive: a download builds a
tar of it on the fly (api/fine_tuning/tar_download.py). Its key in the store is its path under the
data directory (`artifacts/<job>/adapter`, `.../checkpoints/step-N`, `.../merged/model`):

- local backend: the directory is the artifact, moved into place by the worker;
- S3: the worker uploads the directory's files under that key before the row that names it is
  written, so a row (a job's fine-tuned model, a checkpoint) is proof its files are there; a process
  that needs the files on disk (a job trained on from it, a merge) downloads them into the same path
  under its own data directory, which is then only a cache (artifacts never change in place).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from api.config import Settings
from api.fine_tuning import tar_download
from api.storage import store_of
from api.storage.directories import get_directory

# Where a remote artifact's small JSON files are cached for the API's reads (adapter_config.json,
# tunery.json): beside the artifacts, never mistaken for one.
METADATA_CACHE = "artifact-metadata"


def job_artifacts_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_path / job_id


def adapter_dir(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter"


def checkpoint_dir(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}"


def exports_dir(settings: Settings, job_id: str) -> Path:
    """Merged exports, their staging directories and their request/failure markers."""
    return job_artifacts_dir(settings, job_id) / "merged"


def merged_dir(settings: Settings, job_id: str, step: int | None) -> Path:
    """The merged export of the job's fine-tuned model (`step` None) or of its checkpoint at `step`."""
    return exports_dir(settings, job_id) / ("model" if step is None else f"step-{step}")


def key_of(settings: Settings, directory: Path) -> str:
    """The directory's key in the store: its path under the data directory."""
    return directory.relative_to(settings.data_path).as_posix()


def exists(settings: Settings, directory: Path) -> bool:
    """Whether the artifact's files are stored: on disk a stat; on S3 its row (which the caller has
    read) is the proof, so no network call is made here, inside the caller's transaction."""
    return directory.is_dir() if not store_of(settings).remote else True


def served_as(settings: Settings, directory: Path) -> str:
    """How the API names an artifact to an inference backend: its path where the backend shares this
    data directory; its key on S3 (the backend fetches it into its own: worker/inference/models.py)."""
    return key_of(settings, directory) if store_of(settings).remote else str(directory)


def fetch(settings: Settings, directory: Path) -> bool:
    """Put the artifact's files at `directory` on this machine (downloaded once from a remote
    store); False if they are not stored. Never inside a transaction."""
    if directory.is_dir():
        return True
    store = store_of(settings)
    return store.remote and get_directory(store, key_of(settings, directory), directory)


def metadata_dir(settings: Settings, directory: Path) -> Path:
    """A directory holding the artifact's JSON files (what the API reads of it: the adapter's config,
    the run record): the artifact itself on disk; on S3 a cache of those small files, fetched once."""
    store = store_of(settings)
    if not store.remote or directory.is_dir():
        return directory
    cache = settings.data_path / METADATA_CACHE / key_of(settings, directory)
    done = cache / ".fetched"
    if not done.exists():
        prefix = key_of(settings, directory) + "/"
        for name in store.children(prefix):
            if name.endswith(".json"):
                store.get_file(prefix + name, cache / name)
        cache.mkdir(parents=True, exist_ok=True)
        done.touch()
    return cache


def stored_bytes(settings: Settings, directory: Path) -> int:
    """The artifact's size: its files on disk, or its objects in the bucket (a listing)."""
    store = store_of(settings)
    if not store.remote:
        files = [p for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
        return sum(p.stat().st_size for p in files)
    return sum(found.size for found in store.objects(key_of(settings, directory) + "/"))


def download(
    request: Request,
    settings: Settings,
    directory: Path,
    filename: str,
    root: str = tar_download.ADAPTER_ROOT,
) -> Response | None:
    """The artifact as a tar download, from the directory or streamed from the store's objects; None
    when its files are not stored. The caller's read transaction must be over (api.db.end_reads)."""
    store = store_of(settings)
    if not store.remote or directory.is_dir():
        if not directory.is_dir():
            return None
        return tar_download.tar_response(request, directory, filename, root=root)
    prefix = key_of(settings, directory) + "/"

    def reader(key: str) -> Callable[[int], Iterator[bytes]]:
        return lambda start: store.read(key, start)

    found = [(o.key[len(prefix) :], o.size, o.etag, reader(o.key)) for o in store.objects(prefix)]
    tar = tar_download.plan_of_objects(found, root)
    if len(tar.members) == 1:  # the root folder alone: nothing stored under the key
        return None
    return tar_download.ranged_response(
        request, tar.length, tar.etag, tar.chunks, filename, tar_download.TAR_MEDIA_TYPE
    )


def remove(settings: Settings, directory: Path) -> None:
    """The artifact's files, wherever they are: the directory (or its cache) and its objects."""
    shutil.rmtree(directory, ignore_errors=True)
    store = store_of(settings)
    if store.remote:
        key = key_of(settings, directory)
        store.delete_prefix(key)
        shutil.rmtree(settings.data_path / METADATA_CACHE / key, ignore_errors=True)


def remove_adapter(settings: Settings, job_id: str) -> None:
    """The fine-tuned model's files: its artifact and its merged export (checkpoints stay)."""
    remove(settings, adapter_dir(settings, job_id))
    merged = merged_dir(settings, job_id, None)
    remove(settings, merged)
    store = store_of(settings)
    if store.remote:  # the objects that say what state its export is in (api/models/downloads.py)
        for kind in ("ready", "failed", "requested"):
            store.delete(f"{key_of(settings, merged)}.{kind}")


def remove_job(settings: Settings, job_id: str) -> None:
    """Every artifact of a job (its model, checkpoints, exports)."""
    remove(settings, job_artifacts_dir(settings, job_id))
