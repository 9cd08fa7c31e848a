"""Runs the trainer as a child process and streams its JSON-lines progress to a callback.

The child gets its own process group, so the whole tree (data loader workers included) can be
stopped at once, and stderr goes to a log file kept with the job. While it runs, a watcher thread
asks the caller every few seconds whether to go on, stop gracefully (SIGTERM: the trainer saves a
resumable checkpoint and exits) or kill it outright (SIGKILL: cancel, or a lost lease).

Lines are read with the protocol's own definitions (worker/training/progress.py). A line that is not
one of its events is handed on as an `UnreadableLine`, so that it reaches the job's events and the
log instead of vanishing.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.ranks import start_ranks
from worker.training.progress import (
    FINAL_EVENTS,
    Completed,
    Failed,
    ProtocolError,
    Stopped,
    TrainerEvent,
    parse_line,
)

log = logging.getLogger("tunery.worker.supervisor")

# No run-time downloads, ever: base models are local directories.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass(frozen=True)
class UnreadableLine:
    """A line on the trainer's stdout that is no protocol event: a bug on one side or the other."""

    line: str
    problem: str


class Action(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"
    """Checkpoint and exit: pause, or the worker shutting down."""
    KILL = "kill"
    """Stop now, nothing saved: cancel, or the job is no longer ours."""


@dataclass(frozen=True)
class TrainerExit:
    returncode: int
    final_event: Completed | Failed | Stopped | None
    """The line that ended the run, when the trainer got to write one."""
    stderr_tail: str
    action: Action
    """What the watcher last asked for: CONTINUE when the trainer ended on its own."""


@dataclass(frozen=True)
class Watch:
    decide: Callable[[], Action]
    interval: float
    stop_grace: float = 300.0
    """Seconds a trainer asked to stop may take to checkpoint before it is killed."""


def run_trainer(
    spec_path: Path,
    log_path: Path,
    on_event: Callable[[TrainerEvent | UnreadableLine], None],
    watch: Watch | None = None,
    processes: int = 1,
) -> TrainerExit:
    """Run the trainer of `spec_path` (over `processes` ranks: recipe distributed "ddp" or "fsdp") to
    its end."""
    command = [sys.executable, "-m", "worker.training", str(spec_path)]
    env = {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1"}
    final: Completed | Failed | Stopped | None = None
    with log_path.open("ab") as stderr_log:
        if processes > 1:
            ranks = start_ranks(command, env, spec_path.parent, stderr_log, processes)
            process = ranks.leader
        else:
            ranks = None
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr_log,
                env=env,
                cwd=spec_path.parent,
                start_new_session=True,
            )
        watcher = (
            Watcher(
                watch,
                stop=lambda: _signal_group(process, signal.SIGTERM),
                kill=lambda: _signal_group(process, signal.SIGKILL),
                what="trainer",
            )
            if watch
            else None
        )
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                event = read_line(raw)
                if isinstance(event, FINAL_EVENTS):
                    final = event
                if watcher and watcher.action is Action.KILL:
                    # Cancelled, or the job is no longer ours: what the trainer still had in the pipe
                    # (hundreds of lines on a fast run) is moot, and recording it would only delay
                    # the job's last word ("Trainer stopped") by a transaction per line.
                    continue
                on_event(event)
            returncode = process.wait()
            if ranks is not None:
                killed = watcher is not None and watcher.action is Action.KILL
                returncode, final = ranks.finish(returncode, final, killed=killed)
        except BaseException:
            _signal_group(process, signal.SIGKILL)  # never leave a trainer behind
            process.wait()
            if ranks is not None:
                ranks.reap()
            raise
        finally:
            if watcher:
                watcher.finish()
    return TrainerExit(returncode, final, log_tail(log_path), watcher.action if watcher else Action.CONTINUE)


class Watcher:
    """Asks `watch.decide` every interval what to do with a run, and does it: `stop` asks the run to
    stop (it checkpoints), `kill` ends it; a run that has not stopped `stop_grace` after being asked
    is killed. The local trainer's process group and a cluster's Ray job share this policy."""

    def __init__(self, watch: Watch, stop: Callable[[], None], kill: Callable[[], None], what: str) -> None:
        self.watch = watch
        self.action = Action.CONTINUE
        self._stop, self._kill, self._what = stop, kill, what
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{what}-watch", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self._done.set()
        self._thread.join(timeout=self.watch.interval + 5)

    def _run(self) -> None:
        stop_sent_at: float | None = None
        while not self._done.wait(self.watch.interval):
            try:
                action = self.watch.decide()
                if action is Action.KILL:
                    self.action = Action.KILL
                    self._kill()
                    return
                if action is Action.STOP and stop_sent_at is None:
                    self.action = Action.STOP
                    self._stop()
                    stop_sent_at = time.monotonic()
                if stop_sent_at is not None and time.monotonic() - stop_sent_at > self.watch.stop_grace:
                    log.warning(
                        "%s did not stop within %.0f s; killing it", self._what, self.watch.stop_grace
                    )
                    self._kill()
                    return
            except Exception:
                # A database (or cluster) blip must not kill a long run; the lease has slack for a few
                # misses, and an unsent stop is sent again at the next look.
                log.exception("%s watch failed; will try again", self._what)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)


def read_line(raw: bytes) -> TrainerEvent | UnreadableLine:
    try:
        return parse_line(raw)
    except ProtocolError as error:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        log.warning("the trainer wrote a line that is no protocol event (%s): %r", error, line[:500])
        return UnreadableLine(line=line, problem=str(error))


def log_tail(path: Path, lines: int = 20) -> str:
    with path.open("rb") as stream:
        return b"".join(deque(stream, maxlen=lines)).decode("utf-8", "replace")
