"""Real PostgreSQL and Redis for the tests.

The suite uses the servers at TUNERY_TEST_POSTGRES_URL / TUNERY_TEST_REDIS_URL (default: the local
ones on 5432 and 6379). When none answers, it starts throwaway ones from the installed server
binaries in a temporary directory, and when there are none, it stops with a message saying what to
install.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ServiceUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL of a PostgreSQL server that answers."""
    url = os.environ.get("TUNERY_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if answers(url):
        yield url
        return
    initdb = _find_binary("initdb", "/usr/lib/postgresql/*/bin")
    if initdb is None:
        raise ServiceUnavailable(
            f"PostgreSQL is not answering at {url} and no PostgreSQL server is installed to start one. "
            "Install it (Debian: apt-get install postgresql) or point TUNERY_TEST_POSTGRES_URL at a server."
        )
    bindir = Path(initdb).parent
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="tunery-pg-"))
    data = root / "data"
    as_user = _unprivileged_user()
    if as_user:
        shutil.chown(root, user=as_user)
    _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], as_user)
    _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
        ],
        as_user,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], as_user)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a Redis server that answers."""
    url = os.environ.get("TUNERY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if answers(url):
        yield url
        return
    missing = (
        f"Redis is not answering at {url} and redis-server is not installed to start one. "
        "Install it (Debian: apt-get install redis-server) or point TUNERY_TEST_REDIS_URL at a server."
    )
    with private_redis(missing) as started:
        yield started


@contextmanager
def private_redis(missing: str = "redis-server is not installed") -> Iterator[str]:
    """A redis-server of our own on a free port, keeping nothing on disk, stopped afterwards.
    Without the binary: ServiceUnavailable(missing)."""
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable(missing)
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"redis://127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def fresh_database(
    admin_url: str, *, prefix: str = "tunery_test", template: str | None = None
) -> Iterator[str]:
    """A new database on the server (empty, or a copy of `template`), dropped with its connections
    afterwards: tests never see each other's rows. Yields its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _find_binary(name: str, pattern: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(os.path.join(pattern, name)))
    return candidates[-1] if candidates else None


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: use the postgres (or nobody) account then."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise ServiceUnavailable("running as root and no unprivileged user to start PostgreSQL as")


def _run(command: list[str], as_user: str | None) -> None:
    if as_user:
        command = ["runuser", "-u", as_user, "--", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{url} did not start answering within {timeout}s")
        time.sleep(0.1)
