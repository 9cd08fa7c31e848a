"""Runs the trainer as a child process and streams its JSON-lines progress to a callback.

The child gets its own process group, so the whole tree (data loader workers included) can be
stopped at once, and stderr goes to a log file kept with the job.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tunery.worker.supervisor")

TrainerEvent = dict[str, Any]

# No run-time downloads, ever: base models are local directories.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass(frozen=True)
class TrainerExit:
    returncode: int
    final_event: TrainerEvent | None
    """The "completed" or "failed" line, when the trainer got to write one."""
    stderr_tail: str


def run_trainer(spec_path: Path, log_path: Path, on_event: Callable[[TrainerEvent], None]) -> TrainerExit:
    command = [sys.executable, "-m", "worker.training", str(spec_path)]
    env = {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1"}
    final: TrainerEvent | None = None
    with log_path.open("wb") as stderr_log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr_log,
            env=env,
            cwd=spec_path.parent,
            start_new_session=True,
        )
        assert process.stdout is not None
        for raw in process.stdout:
            event = _parse(raw)
            if event is None:
                continue
            if event.get("event") in ("completed", "failed"):
                final = event
            on_event(event)
        returncode = process.wait()
    return TrainerExit(returncode, final, _tail(log_path))


def _parse(raw: bytes) -> TrainerEvent | None:
    try:
        event = json.loads(raw)
    except ValueError:
        log.warning("trainer wrote a line that is not JSON: %r", raw[:200])
        return None
    return event if isinstance(event, dict) else None


def _tail(path: Path, lines: int = 20) -> str:
    with path.open("rb") as stream:
        return b"".join(deque(stream, maxlen=lines)).decode("utf-8", "replace")
