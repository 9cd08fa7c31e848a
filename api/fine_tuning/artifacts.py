"""Where a job's artifacts live in the data directory, shared by the API (serving) and the worker, and
the tar a download streams from them.

An artifact is stored as the directory the trainer wrote (moved into place by the worker), never as an
archive: the download builds an uncompressed tar on the fly, member by member, in bounded memory.
Uncompressed, because safetensors weights do not compress and gzip would only cost minutes of CPU.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.responses import StreamingResponse

from api.config import Settings

# The folder a downloaded archive unpacks to, whatever the artifact's form: `tar xf` gives adapter/.
ARCHIVE_ROOT = "adapter"
CHUNK = 1024 * 1024
TAR_MEDIA_TYPE = "application/x-tar"
DOWNLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "An uncompressed tar of the artifact directory, unpacking to adapter/.",
        "content": {TAR_MEDIA_TYPE: {}},
    }
}


def job_artifacts_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_path / job_id


def adapter_dir(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter"


def remove_adapter(settings: Settings, job_id: str) -> None:
    shutil.rmtree(adapter_dir(settings, job_id), ignore_errors=True)


def checkpoint_dir(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}"


@dataclass(frozen=True)
class _Member:
    header: bytes
    path: Path | None
    """The file whose bytes follow the header; None for a directory."""
    size: int


def tar_response(directory: Path, filename: str) -> StreamingResponse:
    """A download of `directory` as `filename`, a tar streamed as it is read from disk.

    The request's session is already closed when the first byte goes out (SessionDep commits when
    the endpoint returns): a slow download holds no database connection.
    """
    length, chunks = tar_of(directory)
    return StreamingResponse(
        chunks,
        media_type=TAR_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(length)},
    )


def tar_of(directory: Path) -> tuple[int, Iterator[bytes]]:
    """The length of the tar of `directory` (members under adapter/) and its bytes, in chunks of at
    most CHUNK. The members are listed (stat only) before the first chunk, so the length is known."""
    members = list(_members(directory))
    length = sum(len(m.header) + _padded(m.size) for m in members) + 2 * tarfile.BLOCKSIZE
    return length, _stream(members)


def _members(directory: Path) -> Iterator[_Member]:
    yield _Member(_header(ARCHIVE_ROOT, os.stat(directory), tarfile.DIRTYPE), None, 0)
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        relative = Path(root).relative_to(directory)
        for name in dirs:
            path = Path(root, name)
            yield _Member(_header(_name(relative / name), path.stat(), tarfile.DIRTYPE), None, 0)
        for name in sorted(files):
            path = Path(root, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):  # a trainer writes nothing else; anything else stays out
                yield _Member(_header(_name(relative / name), info, tarfile.REGTYPE), path, info.st_size)


def _stream(members: list[_Member]) -> Iterator[bytes]:
    for member in members:
        yield member.header
        if member.path is None:
            continue
        left = member.size
        with member.path.open("rb") as stream:
            while left > 0:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    # The header promised more bytes than there are: better a broken download than a
                    # tar that unpacks into a silently truncated model.
                    raise OSError(f"{member.path} shrank while it was being sent")
                left -= len(chunk)
                yield chunk
        padding = _padded(member.size) - member.size
        if padding:
            yield bytes(padding)
    yield bytes(2 * tarfile.BLOCKSIZE)  # the end-of-archive marker


def _name(relative: Path) -> str:
    return f"{ARCHIVE_ROOT}/{relative.as_posix()}"


def _header(name: str, info: os.stat_result, kind: bytes) -> bytes:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    member.mtime = int(info.st_mtime)
    member.size = info.st_size if kind == tarfile.REGTYPE else 0
    return member.tobuf(format=tarfile.PAX_FORMAT)


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
