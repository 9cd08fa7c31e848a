"""One rank of a multi-node run, inside a Ray Train worker: the ordinary trainer process
(`python -m worker.training spec.json`) started with this rank's RANK, LOCAL_RANK and WORLD_SIZE.

The trainer is a process of its own, not a function called in the Ray worker: it installs its SIGTERM
handler (checkpoint and stop) and makes its own process group, which a thread of a Ray actor could
not. Its ranks meet at rank 0's TCP store, on rank 0's node address and a port rank 0 picked, both
sent to the others over the process group Ray Train made. Rank 0's stdout (the protocol) goes line
by line to the run's channel; every rank's stderr to trainer-rank{N}.log beside the spec. The trainer
dies with its Ray worker (PR_SET_PDEATHSIG): a worker Ray kills leaves no trainer behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from worker.ranks import describe
from worker.supervisor import OFFLINE_ENV

STOP_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class RankFailed(RuntimeError):
    """A rank's trainer exited with a failure; the message names the rank, its node and its log."""


def run_rank(config: dict[str, Any]) -> None:
    """Ray Train's train_loop_per_worker: `config` has the spec's path and the run's channel."""
    import ray.train

    config["channel"].rank_started.remote()  # Ray placed the whole group: it starts no rank before
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    spec = Path(config["spec"])
    master_addr, master_port = _meeting_point(rank)
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "PYTHONUNBUFFERED": "1",
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(context.get_local_rank()),
        "LOCAL_WORLD_SIZE": str(context.get_local_world_size()),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
    }
    env.pop("TUNERY_RENDEZVOUS", None)
    log_path = spec.parent / f"trainer-rank{rank}.log"
    node = ray.util.get_node_ip_address()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.training", str(spec)],
            stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=spec.parent,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    stop_sent = threading.Event()
    stopper = threading.Thread(
        target=_forward_stop, args=(process, config["channel"], stop_sent), daemon=True
    )
    stopper.start()
    try:
        if process.stdout is not None:
            for raw in process.stdout:
                config["channel"].push.remote(raw.decode("utf-8", "replace").rstrip("\n"))
        code = process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the trainer's own children too
        process.wait()
    # Asked to stop, a trainer may have stopped already: the other ranks' SIGTERM reached it first and
    # they agreed to stop at a step. Ours then lands while it exits, and kills it. That is the stop.
    if code != 0 and not (stop_sent.is_set() and code == -signal.SIGTERM):
        tail = _tail(log_path)
        raise RankFailed(
            f"rank {rank} of {world} on node {node} {describe(code)}"
            + (f". Its log ends: {tail}" if tail else "")
        )


def _meeting_point(rank: int) -> tuple[str, int]:
    """Rank 0's node address and a free port there, agreed over Ray Train's process group."""
    import ray
    import torch.distributed as dist

    point: list[Any] = [None, None]
    if rank == 0:
        address = ray.util.get_node_ip_address()
        with socket.socket() as probe:
            probe.bind((address, 0))
            point = [address, probe.getsockname()[1]]
    dist.broadcast_object_list(point, src=0)
    return point[0], int(point[1])


def _forward_stop(process: subprocess.Popen[bytes], channel: Any, sent: threading.Event) -> None:
    """SIGTERM to the trainer once the driver asked the run to stop (the trainer checkpoints)."""
    import ray

    while process.poll() is None:
        try:
            if ray.get(channel.stop_requested.remote(), timeout=30):
                sent.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                return
        except Exception:  # the channel gone means the run is ending anyway
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_POLL_SECONDS)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 6) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as stream:
        return b"".join(deque(stream, maxlen=lines)).decode("utf-8", "replace").strip()[-1500:]
