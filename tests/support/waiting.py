"""Waiting for a condition in a live test: poll it, and on timeout fail saying what was awaited,
with the tail of the processes' logs when there are processes to blame."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class HasLogs(Protocol):
    def log_tail(self) -> str: ...


def wait(
    predicate: Callable[[], object],
    what: str,
    logs: HasLogs | None = None,
    timeout: float = 60,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = f"\n{logs.log_tail()}" if logs is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{tail}")
        time.sleep(interval)
