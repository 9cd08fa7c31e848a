"""The queue SQLite's writers wait in, across threads and across processes.

SQLite lets one writer at a time have the file. A writer that finds it taken waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15, 20, 25, ... up to 100 ms between tries: under load the
file's lock sat free while waiters slept, and every API process's writers lost turns to it.

So a writer first takes its process's lock (a thread is woken the moment the one before it is
done), then an advisory `flock` on a file beside the database shared by every process that writes
it (the API's workers, the Celery worker), polled at most a couple of milliseconds apart. Only then
does it BEGIN IMMEDIATE, which then rarely waits. SQLite's own lock still decides who writes: a
process that does not queue here (a migration, the sqlite3 shell) is simply waited for as before.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

FIRST_POLL_SECONDS = 0.0002
LAST_POLL_SECONDS = 0.002


class WriterQueue:
    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = Path(f"{database}-writers.lock") if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def acquire(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for this process's turn and the file's; False if none came."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._path is None:
            return True
        fd = self._file()
        pause = FIRST_POLL_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                self._threads.release()
                return False
            time.sleep(pause)
            pause = min(pause * 2, LAST_POLL_SECONDS)

    def release(self) -> None:
        if self._path is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _file(self) -> int:
        # Per process: a forked child shares its parent's open file, and with it the parent's lock.
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd
