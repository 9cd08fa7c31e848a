"""A stored directory as a download: an uncompressed tar built on the fly, byte-for-byte the same on
every request, so its length and a strong ETag are known before the first byte and a cut-off download
resumes with `Range`.

Uncompressed, because safetensors weights do not compress and gzip would only cost minutes of CPU.
Deterministic, because every member header is fixed (mtime 0, uid/gid 0, no owner names, mode 644 or
755) and members are sorted: the tar is a function of the names, sizes and contents of the files. The
ETag stands for those contents through each file's size, mtime (ns) and inode; artifact directories are
written elsewhere and renamed into place, never changed in place, so a new artifact is a new ETag.
Memory stays bounded: headers are a few hundred bytes each, file bytes go out CHUNK at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

CHUNK = 1024 * 1024
TAR_MEDIA_TYPE = "application/x-tar"
# The folder a downloaded adapter unpacks to, whatever the artifact's form: `tar xf` gives adapter/.
ADAPTER_ROOT = "adapter"
DOWNLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "An uncompressed tar of the artifact directory.", "content": {TAR_MEDIA_TYPE: {}}},
    206: {"description": "The requested byte range of that tar (`Range: bytes=a-b`)."},
    304: {"description": "Not modified: `If-None-Match` names the current ETag."},
    416: {"description": "The range lies beyond the end of the tar."},
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class _Member:
    header: bytes
    path: Path | None
    """The file whose bytes follow the header; None for a directory."""
    size: int
    identity: str
    """What the ETag hashes for this member: its name, size, mtime and inode (or object ETag)."""
    read: Callable[[int], Iterator[bytes]] | None = None
    """For a member not on disk (an object in the store): its bytes from an offset on."""

    @property
    def length(self) -> int:
        return len(self.header) + _padded(self.size)


@dataclass(frozen=True)
class TarPlan:
    """The members of a directory's tar, listed (stat only) but not read."""

    members: tuple[_Member, ...]

    @property
    def length(self) -> int:
        return sum(m.length for m in self.members) + 2 * tarfile.BLOCKSIZE

    @property
    def etag(self) -> str:
        digest = hashlib.sha256("\n".join(m.identity for m in self.members).encode()).hexdigest()
        return f'"{digest[:32]}"'

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The tar's bytes from `start` to `end` (exclusive; the end of the tar when None)."""
        stop = self.length if end is None else end
        offset = 0
        for member in self.members:
            if offset + member.length <= start:
                offset += member.length  # wholly before the range: not even opened
                continue
            if offset >= stop:
                return
            yield from _cut(_member_bytes(member, skip=max(0, start - offset)), offset, start, stop)
            offset += member.length
        yield from _cut(iter([bytes(2 * tarfile.BLOCKSIZE)]), offset, start, stop)  # end-of-archive


def plan(directory: Path, root: str = ADAPTER_ROOT) -> TarPlan:
    """The tar of `directory`, its members under `root`/."""
    return TarPlan(tuple(_members(directory, root)))


def tar_of(directory: Path, root: str = ADAPTER_ROOT) -> tuple[int, Iterator[bytes]]:
    """The length of the tar of `directory` and all its bytes, in chunks of at most CHUNK."""
    tar = plan(directory, root)
    return tar.length, tar.chunks()


def tar_response(request: Request, directory: Path, filename: str, root: str = ADAPTER_ROOT) -> Response:
    """A download of `directory` as `filename`: 200, 206 for a satisfiable `Range`, 304 for a matching
    `If-None-Match`, 416 for a range past the end. A `Range` with an `If-Range` naming another ETag
    gets the whole tar (the file changed under the client). Multiple ranges get the whole tar too.

    The request's session is already closed when the first byte goes out (SessionDep commits when
    the endpoint returns): a slow download holds no database connection.
    """
    tar = plan(directory, root)
    return ranged_response(request, tar.length, tar.etag, tar.chunks, filename, TAR_MEDIA_TYPE)


def ranged_response(
    request: Request,
    length: int,
    etag: str,
    chunks: Callable[[int, int | None], Iterator[bytes]],
    filename: str,
    media_type: str,
) -> Response:
    """A download of `length` bytes that `chunks(start, end)` streams (a tar built on the fly, an
    object in the store), answering `Range`, `If-Range` and `If-None-Match` as tar_response says."""
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    if etag in _etags(request.headers.get("if-none-match")) or request.headers.get("if-none-match") == "*":
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is not None and _honoured(wanted) and (if_range is None or if_range == etag):
        byte_range = _parse_range(wanted, length)
        if byte_range is None:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{length}"})
        start, end = byte_range
        return StreamingResponse(
            chunks(start, end),
            status_code=206,
            media_type=media_type,
            headers={
                **headers,
                "Content-Length": str(end - start),
                "Content-Range": f"bytes {start}-{end - 1}/{length}",
            },
        )
    return StreamingResponse(
        chunks(0, None), media_type=media_type, headers={**headers, "Content-Length": str(length)}
    )


def _honoured(value: str) -> bool:
    """One byte range; multiple ranges or another unit get the whole tar, as RFC 9110 allows."""
    match = _RANGE.match(value.strip())
    return match is not None and any(match.groups())


def _parse_range(value: str, length: int) -> tuple[int, int] | None:
    """(start, end exclusive) of an honoured range; None when unsatisfiable."""
    match = _RANGE.match(value.strip())
    assert match is not None
    first, last = match.groups()
    if not first:  # bytes=-N: the last N bytes
        suffix = int(last)
        return (max(0, length - suffix), length) if suffix > 0 else None
    start = int(first)
    end = min(int(last) + 1, length) if last else length
    if start >= length or end <= start:
        return None
    return start, end


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _cut(pieces: Iterator[bytes], offset: int, start: int, stop: int) -> Iterator[bytes]:
    """The parts of `pieces` (which begin at `offset`, or at `start` if later) inside [start, stop)."""
    position = max(offset, start)
    for piece in pieces:
        if position >= stop:
            return
        piece = piece[: stop - position]
        position += len(piece)
        yield piece


def _member_bytes(member: _Member, skip: int) -> Iterator[bytes]:
    """A member's header, file bytes and padding, less the first `skip` bytes (a resumed download
    seeks into the file instead of reading it again)."""
    if skip < len(member.header):
        yield member.header[skip:]
    if member.path is None:
        return
    in_file = max(0, skip - len(member.header))
    left = member.size - in_file
    if left > 0 and member.read is not None:
        for chunk in member.read(in_file):
            left -= len(chunk)
            yield chunk
        if left != 0:
            raise OSError(f"{member.path} changed size while it was being sent")
    elif left > 0:
        with member.path.open("rb") as stream:
            stream.seek(in_file)
            while left > 0:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    # The header promised more bytes than there are: better a broken download than a
                    # tar that unpacks into a silently truncated model.
                    raise OSError(f"{member.path} shrank while it was being sent")
                left -= len(chunk)
                yield chunk
    padding = _padded(member.size) - member.size
    already = max(0, skip - len(member.header) - member.size)
    if padding > already:
        yield bytes(padding - already)


def _members(directory: Path, root: str) -> Iterator[_Member]:
    yield _directory(root)
    for parent, dirs, files in os.walk(directory):
        dirs.sort()
        relative = Path(parent).relative_to(directory)
        for name in dirs:
            yield _directory(f"{root}/{(relative / name).as_posix()}")
        for name in sorted(files):
            path = Path(parent, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):  # a trainer writes nothing else; anything else stays out
                member = f"{root}/{(relative / name).as_posix()}"
                identity = f"{member}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}"
                yield _Member(_header(member, tarfile.REGTYPE, info.st_size), path, info.st_size, identity)


def plan_of_objects(
    objects: list[tuple[str, int, str, Callable[[int], Iterator[bytes]]]], root: str = ADAPTER_ROOT
) -> TarPlan:
    """The tar of files that are not on disk: (relative name, size, ETag, read from offset) each.
    Members come in the order `plan` walks a directory, so the same files make the same archive
    (its ETag differs: it stands for the objects' ETags)."""
    tree: dict = {}
    for entry in objects:
        *folders, name = entry[0].split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = entry
    members = [_directory(root)]

    def walk(node: dict, prefix: str) -> None:
        folders = sorted(name for name, value in node.items() if isinstance(value, dict))
        members.extend(_directory(f"{prefix}/{name}") for name in folders)
        for name in sorted(name for name, value in node.items() if not isinstance(value, dict)):
            relative, size, etag, read = node[name]
            member = f"{root}/{relative}"
            header = _header(member, tarfile.REGTYPE, size)
            members.append(_Member(header, Path(relative), size, f"{member}\0{size}\0{etag}", read))
        for name in folders:
            walk(node[name], f"{prefix}/{name}")

    walk(tree, root)
    return TarPlan(tuple(members))


def _directory(name: str) -> _Member:
    return _Member(_header(name, tarfile.DIRTYPE, 0), None, 0, name)


def _header(name: str, kind: bytes, size: int) -> bytes:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    member.mtime = 0
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.size = size
    return member.tobuf(format=tarfile.PAX_FORMAT)


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
