"""The worker registry: a worker registers what it offers, heartbeats, signs off, and is shown
lost when its heartbeat stops; against the database, and with real worker processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import clock
from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.workers.service import ACTIVE, LOST, STOPPED, list_workers
from catalog.sizes import format_bytes, parse_bytes
from tests.support.processes import Cluster
from tests.support.waiting import wait as wait_for
from worker.registry import Capacity, heartbeat, register, sign_off
from worker.runtime import Runtime


def views(runtime: Runtime, now: int | None = None, lost_after: int = 30):  # type: ignore[no-untyped-def]
    with session_scope(runtime.sessions, writes=False) as session:
        found = list_workers(session, now=now or clock.now(), lost_after=lost_after)
        return [(view.worker.id, view.worker.pool, view.worker.gpu_count, view.state) for view in found]


def test_sizes_read_as_people_write_them() -> None:
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("24 GB") == 24 * 10**9
    assert parse_bytes("512") == 512
    assert format_bytes(80 * 2**30) == "80.0 GiB"
    with pytest.raises(ValueError, match="80 gigs"):
        parse_bytes("80 gigs")


def test_a_worker_registers_heartbeats_and_signs_off(runtime: Runtime) -> None:
    capacity = Capacity(pool="a100", gpu_count=4, gpu_memory_bytes=80 * 2**30, gpu_names=["A100"] * 4)
    register(runtime, capacity, ["tunery.training"])
    assert views(runtime) == [(runtime.worker_id, "a100", 4, ACTIVE)]
    # Its heartbeat stops: after a lease's length it is shown lost; a beat brings it back.
    assert views(runtime, now=clock.now() + 31) == [(runtime.worker_id, "a100", 4, LOST)]
    assert heartbeat(runtime)
    assert views(runtime)[0][3] == ACTIVE
    sign_off(runtime)
    assert views(runtime, now=clock.now() + 3600)[0][3] == STOPPED
    # Registering again (a restarted process keeps no id, but a swept row does) updates the row.
    register(runtime, Capacity(pool="cpu"), ["tunery.validation"])
    assert views(runtime) == [(runtime.worker_id, "cpu", 0, ACTIVE)]


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[Cluster]:
    fast = {"TUNERY_LEASE_SECONDS": "3", "TUNERY_HEARTBEAT_SECONDS": "0.3"}
    running = Cluster(settings, tmp_path / "logs", extra_env=fast)
    try:
        yield running
    finally:
        running.stop_all()


def workers_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "api.cli", "workers", *args]
    return subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_real_workers_show_their_pool_and_a_killed_one_goes_lost(
    settings: Settings, cluster: Cluster
) -> None:
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)

    def rows() -> dict[str, tuple[str, int, int | None, str, int]]:
        with session_scope(sessions, writes=False) as session:
            found = list_workers(session, now=clock.now(), lost_after=3)
            return {
                view.worker.pool: (
                    view.worker.id,
                    view.worker.gpu_count,
                    view.worker.gpu_memory_bytes,
                    view.state,
                    view.worker.last_heartbeat_at,
                )
                for view in found
            }

    try:
        doomed = cluster.start_worker("--pool", "big", "--gpus", "2", "--gpu-memory", "24GiB")
        polite = cluster.start_worker("--pool", "small")
        wait_for(lambda: {"big", "small"} <= rows().keys(), "both workers registered", cluster)
        _, gpus, memory, state, first_beat = rows()["big"]
        assert (gpus, memory, state) == (2, 24 * 2**30, ACTIVE)
        assert rows()["small"][1:4] == (0, None, ACTIVE)  # a CPU machine: CUDA reports nothing
        wait_for(lambda: rows()["big"][4] > first_beat, "the heartbeat moved on", cluster)
        assert workers_cli(cluster, "check").returncode == 0  # the worker image's healthcheck
        listed = workers_cli(cluster, "list").stdout
        assert "big\t2 GPU x 24.0 GiB\tactive" in listed and "small\t0 GPU\tactive" in listed

        doomed.send_signal(signal.SIGKILL)
        wait_for(lambda: rows()["big"][3] == LOST, "the killed worker shown lost", cluster)
        polite.send_signal(signal.SIGTERM)
        wait_for(lambda: rows()["small"][3] == STOPPED, "the stopped worker shown stopped", cluster)
        failed = workers_cli(cluster, "check")
        assert failed.returncode == 1 and "no worker on" in failed.stderr
    finally:
        engine.dispose()
