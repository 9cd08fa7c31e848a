"""The ranks of a distributed run (recipe `distributed: "ddp"` or `"fsdp"`): N trainer processes on
this machine, one process group, one fate.

Rank 0 leads: it is the group's leader (its pid is the group's id), its stdout is the protocol stream
the supervisor reads, its stderr the job's trainer.log. The other ranks write nothing to stdout and
keep a log each (trainer-rank{N}.log). They meet through a rendezvous file of this run (torch's
FileStore), not torchrun's TCP store, which listens on every address of the machine; gloo talks over
loopback. A rank that dies takes the whole group with it at once (the others would only wait in
their next collective), and the run's `failed` line names it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from worker.training.distributed import RENDEZVOUS_ENV
from worker.training.progress import Completed, Failed, Stopped

# How long the other ranks may take to exit once rank 0 has (they finish the same step).
EXIT_GRACE_SECONDS = 30.0


class Ranks:
    def __init__(self, processes: list[subprocess.Popen[bytes]], logs: list[Path], rendezvous: Path) -> None:
        self.processes = processes
        self.logs = logs
        self.rendezvous = rendezvous
        self.failed: tuple[int, int] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="trainer-ranks", daemon=True)
        self._thread.start()

    @property
    def leader(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            for rank, process in enumerate(self.processes[1:], start=1):
                code = process.poll()
                if code is not None and code != 0:
                    self.failed = (rank, code)
                    self.kill()
                    return

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.leader.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Wait for every rank, killing the group if any lingers; remove the rendezvous file."""
        self._done.set()
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                process.wait()
        self._thread.join(timeout=5)
        self.rendezvous.unlink(missing_ok=True)

    def finish(
        self, returncode: int, final: Completed | Failed | Stopped | None, *, killed: bool = False
    ) -> tuple[int, Completed | Failed | Stopped | None]:
        """After rank 0 exited: the run's exit status and last line, naming the rank that failed."""
        self.reap()
        if killed or (isinstance(final, Completed | Stopped) and self.failed is None):
            return returncode, final
        world = len(self.processes)
        if self.failed is not None:
            rank, code = self.failed
            cause = f"rank {rank} of {world} {describe(code)}"
            tail = _tail(self.logs[rank])
            message = f"{cause}; the other ranks were stopped" + (f". Its log ends: {tail}" if tail else "")
            return returncode or 1, Failed(code="training_error", message=message)
        if isinstance(final, Failed):
            return returncode, Failed(code=final.code, message=f"rank 0 of {world}: {final.message}")
        if returncode != 0:
            message = f"rank 0 of {world} {describe(returncode)}"
            return returncode, Failed(code="training_error", message=message)
        return returncode, final


def describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def start_ranks(
    command: list[str], env: dict[str, str], cwd: Path, leader_log: IO[bytes], world: int
) -> Ranks:
    rendezvous = cwd / f"rendezvous-{time.time_ns()}"
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for rank in range(world):
            _start_rank(command, env, cwd, leader_log, world, rank, rendezvous, processes, logs)
    except BaseException:
        # A rank that could not start: those already running would wait for it forever.
        if processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(processes[0].pid, signal.SIGKILL)
            for process in processes:
                process.wait()
        raise
    return Ranks(processes, logs, rendezvous)


def _start_rank(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    leader_log: IO[bytes],
    world: int,
    rank: int,
    rendezvous: Path,
    processes: list[subprocess.Popen[bytes]],
    logs: list[Path],
) -> None:
    rank_env = {
        **env,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        RENDEZVOUS_ENV: str(rendezvous),
        # Collectives between processes of one machine: loopback, never the machine's address.
        "GLOO_SOCKET_IFNAME": "lo",
        "NCCL_SOCKET_IFNAME": "lo",
        "MASTER_ADDR": "127.0.0.1",
    }
    log_path = cwd / "trainer.log" if rank == 0 else cwd / f"trainer-rank{rank}.log"
    logs.append(log_path)
    if rank == 0:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=leader_log,
            env=rank_env,
            cwd=cwd,
            # A group of its own (not a session: the other ranks could not join one).
            process_group=0,
        )
    else:
        with log_path.open("ab") as rank_log:
            process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=rank_log,
                env=rank_env,
                cwd=cwd,
                process_group=processes[0].pid,
            )
    processes.append(process)


def _tail(path: Path, lines: int = 6) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as stream:
        return b"".join(deque(stream, maxlen=lines)).decode("utf-8", "replace").strip()[-1500:]
