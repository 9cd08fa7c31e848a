"""`tunery api` with TUNERY_API_WORKERS=2, on each backend: two processes serve one port, and what the
official SDK creates through one connection the others list and retrieve; the per-key rate limit is
the service's, not each process's; and killing the supervisor takes its workers (and their upload
checkers) with it, so the port is free for the restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import child_pids, service_env, stop
from tests.support.services import free_port
from tests.support.tiny_model import jsonl, toy_chat_examples

pytestmark = [pytest.mark.slow, pytest.mark.integration]

KEY = "tun-workers-test-key-0123456789"


@contextmanager
def api(settings: Settings, port: int, log: Path) -> Iterator[subprocess.Popen]:
    env = service_env(settings, KEY, port) | {
        "TUNERY_API_WORKERS": "2",
        "TUNERY_RATE_LIMIT_JOBS_PER_MINUTE": "4",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            if len(workers_of(process.pid)) == 2 and answers(port):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"two API workers did not answer:\n{log.read_text(errors='replace')}")
        yield process
    finally:
        stop(process)


def workers_of(supervisor: int) -> list[int]:
    def is_worker(pid: int) -> bool:
        try:
            return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()  # not the resource tracker
        except OSError:
            return False

    return [pid for pid in child_pids(supervisor) if is_worker(pid)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a killed orphan stays a zombie until some init reaps it


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def fresh_sdk(port: int) -> openai.OpenAI:
    """A client of its own, so a new connection: the kernel hands it to either worker."""
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)


def test_two_api_workers_serve_the_sdk_and_share_the_rate_limit(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    port, log = free_port(), tmp_path / "api.log"
    with api(settings, port, log) as supervisor:
        training = fresh_sdk(port).files.create(
            file=("train.jsonl", jsonl(toy_chat_examples(10))), purpose="fine-tune"
        )
        # The limit counts in fixed one-minute windows: all eight creates must fall in one of them
        # (a CI run straddled a boundary, and the second four were admitted in the fresh window).
        seconds_in = time.time() % 60
        if seconds_in > 30:
            time.sleep(60 - seconds_in + 0.5)
        made = [
            fresh_sdk(port).fine_tuning.jobs.create(model=TINY_MODEL, training_file=training.id).id
            for _ in range(4)
        ]
        for job_id in made:
            assert fresh_sdk(port).fine_tuning.jobs.retrieve(job_id).status == "validating_files"
        assert [job.id for job in fresh_sdk(port).fine_tuning.jobs.list(limit=20)] == made[::-1]
        # 4 a minute for the key across both processes: per-process counting would admit 8.
        with pytest.raises(openai.RateLimitError):
            for _ in range(4):
                fresh_sdk(port).fine_tuning.jobs.create(model=TINY_MODEL, training_file=training.id)

        workers = workers_of(supervisor.pid)
        # The processes share one fresh metrics directory, so a scrape of either sums both.
        shared = {
            entry.split(b"=", 1)[1]
            for pid in workers
            for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
        }
        assert len(shared) == 1 and Path(shared.pop().decode()).is_dir()
        # The upload was checked in a worker's checking pool: those processes must go too.
        checkers = [pid for worker in workers for pid in workers_of(worker)]
        assert checkers, "the upload's check ran in a pool process"
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        deadline = time.monotonic() + 20
        while any(map(alive, workers + checkers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(alive, workers)), "a worker outlived its supervisor"
        assert not any(map(alive, checkers)), "an upload checker outlived its API process"

    with api(settings, port, log):  # the same port, free again
        assert len(fresh_sdk(port).fine_tuning.jobs.list(limit=20).data) == 4
