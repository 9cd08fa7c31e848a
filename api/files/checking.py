"""Checking an upload's lines in a process of its own.

The check is pure Python over every line: tens of seconds of CPU for a 100 MB file. Run on a thread
of the API process it would hold the GIL that every other request needs, and a job create waiting
behind a large upload took seconds. A small pool of spawned processes does the checking instead;
the API process only waits for the report, which is small (counts and the first problems).
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from api.files.validation import DatasetReport, check_lines, read_lines
from api.parent_death import exit_when_orphaned

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
# Uploads checked at once; more wait their turn. Two keep a small API machine's cores for requests.
PROCESSES = 2


def check_file(path: Path, *, max_line_bytes: int, max_lines: int) -> DatasetReport:
    """The report of check_lines over the file at `path`, computed in the checking pool."""
    for attempt in (1, 2):
        try:
            return _executor().submit(_check, str(path), max_line_bytes, max_lines).result()
        except BrokenProcessPool:
            # A checker was killed (out of memory, a signal): start a fresh pool and try once more.
            _discard_pool()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _check(path: str, max_line_bytes: int, max_lines: int) -> DatasetReport:
    with open(path, "rb") as stream:
        return check_lines(
            read_lines(stream, max_line_bytes), max_line_bytes=max_line_bytes, max_lines=max_lines
        )


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # spawn, not fork: the API process has threads (and maybe locks held in them) at this point.
            # Checkers exit once this process is gone: an API stopped or killed left them behind.
            _pool = ProcessPoolExecutor(
                max_workers=PROCESSES,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_when_orphaned,
            )
        return _pool


def _discard_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
