"""A whole-model job stores its checkpoint and its model without stalling the service.

The API and a worker run as separate processes on the embedded default (SQLite and the filesystem
broker: one write at a time, the worst case), and a `freeze` job trains a Llama heavy enough (about
95 MB of weights) that archiving or copying it under a lock, as the worker once did, would hold every
write for seconds. While the job trains and stores, a prober uploads files, creates jobs and cancels
them, and reads the job's lease: every request answers within a second and the lease never lapses.
A second job is cancelled the moment its checkpoint reaches the artifacts directory.

TUNERY_STORAGE_TEST_MODEL=/path/to/model runs the same test on another base model (the demo model,
by hand) and prints the figures.
"""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from api import clock
from api.config import Settings
from api.fine_tuning import artifacts
from api.models.store import ModelStore
from api.tables import FineTuningJob
from tests.support import waiting
from tests.support.processes import Cluster, trainer_pids
from tests.support.tiny_model import build_tiny_chat_model, jsonl, toy_chat_examples

# This file's jobs take a while on a loaded machine: a longer default wait.
wait = functools.partial(waiting.wait, timeout=400, interval=0.05)


pytestmark = [pytest.mark.e2e, pytest.mark.alone]
MODEL = "heavy-llama"
FAST = {
    "TUNERY_LEASE_SECONDS": "4",
    "TUNERY_HEARTBEAT_SECONDS": "0.5",
    "TUNERY_RECONCILE_SECONDS": "1",
    "TUNERY_RATE_LIMIT_JOBS_PER_MINUTE": "0",
    "TUNERY_RATE_LIMIT_UPLOADS_PER_MINUTE": "0",
    # One core for the trainer, the other for the API: the test measures locks, not CPU contention.
    "OMP_NUM_THREADS": "1",
}
SLOWEST_ANSWER = 1.0  # seconds
LAST_STEP_TO_SUCCEEDED = 8  # seconds: saving the model and storing it, on a shared CI disk


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    by_hand = os.environ.get("TUNERY_STORAGE_TEST_MODEL")
    if by_hand:
        return Path(by_hand)
    return build_tiny_chat_model(
        tmp_path_factory.mktemp("heavy") / "model",
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=6,
    )


@pytest.fixture
def cluster(settings: Settings, model_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    ModelStore(settings.models_path).import_directory(model_dir, MODEL)
    running = Cluster(settings, tmp_path / "logs", extra_env=FAST)
    try:
        running.start_api()
        running.start_worker()
        yield running
    finally:
        running.stop_all()


@dataclass
class Prober:
    """Writes to the API in a loop and reads the job's lease, until stopped."""

    api: httpx.Client
    settings: Settings
    job_id: str
    answers: dict[str, list[float]] = field(
        default_factory=lambda: {"upload": [], "create": [], "cancel": []}
    )
    lapses: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            self._probe()
        except Exception as error:  # reported by the test: a thread's exception would pass unseen
            self.failures.append(f"{type(error).__name__}: {error}")

    def _probe(self) -> None:
        engine = create_engine(self.settings.sqlalchemy_url)
        body = jsonl(toy_chat_examples(10))
        try:
            while not self.stop.is_set():
                file_id = self._timed(
                    "upload", "/files", files={"file": ("p.jsonl", body)}, data={"purpose": "fine-tune"}
                )
                job = self._timed(
                    "create", "/fine_tuning/jobs", json={"model": MODEL, "training_file": file_id}
                )
                self._timed("cancel", f"/fine_tuning/jobs/{job}/cancel")  # it never reaches the worker
                with engine.connect() as connection:
                    status, expires = connection.execute(
                        select(FineTuningJob.status, FineTuningJob.lease_expires_at).where(
                            FineTuningJob.id == self.job_id
                        )
                    ).one()
                if status == "running" and (expires is None or expires < clock.now()):
                    self.lapses.append(f"lease {expires} at {clock.now()}")
                self.stop.wait(0.2)
        finally:
            engine.dispose()

    def _timed(self, kind: str, path: str, **request: object) -> str:
        started = time.monotonic()
        response = self.api.post(path, **request)  # type: ignore[arg-type]
        self.answers[kind].append(time.monotonic() - started)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def api_client(cluster: Cluster) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.base_url, headers={"Authorization": f"Bearer {cluster.api_key}"}, timeout=60
    )


def create_freeze_job(api: httpx.Client, n_epochs: int) -> str:
    upload = api.post(
        "/files", files={"file": ("t.jsonl", jsonl(toy_chat_examples(12)))}, data={"purpose": "fine-tune"}
    )
    job = api.post(
        "/fine_tuning/jobs",
        json={
            "model": MODEL,
            "training_file": upload.json()["id"],
            "hyperparameters": {"n_epochs": n_epochs, "batch_size": 4},
            "recipe": {"type": "freeze", "max_seq_length": 64},
        },
    )
    assert job.status_code == 200, job.text
    return str(job.json()["id"])


def status(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/fine_tuning/jobs/{job_id}").json()["status"])


def test_storing_a_whole_model_stalls_no_request_and_no_lease(cluster: Cluster, settings: Settings) -> None:
    api = api_client(cluster)
    job_id = create_freeze_job(api, n_epochs=2)  # a checkpoint at the first epoch's end, then the model
    prober = Prober(api_client(cluster), settings, job_id)
    probing = threading.Thread(target=prober.run, daemon=True)
    probing.start()
    try:
        wait(lambda: status(api, job_id) in ("succeeded", "failed", "cancelled"), "the job to end", cluster)
    finally:
        prober.stop.set()
        probing.join(timeout=60)
    job = api.get(f"/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", (job["error"], cluster.log_tail())
    events = api.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    last_step = max(e["created_at"] for e in events if e["type"] == "metrics")
    checkpoints = api.get(f"/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]

    figures = {
        kind: f"max {max(times):.3f} s, median {statistics.median(times):.3f} s, n={len(times)}"
        for kind, times in prober.answers.items()
        if times
    }
    print(f"\nlast step to succeeded: {job['finished_at'] - last_step} s; answers while storing: {figures}")
    assert [c["step_number"] for c in checkpoints] == [6, 3]
    assert prober.failures == []
    assert all(prober.answers.values()), "the prober made no request while the job ran"
    for kind, times in prober.answers.items():
        assert max(times) < SLOWEST_ANSWER, f"a {kind} waited {max(times):.2f} s: {figures}"
    assert prober.lapses == [], prober.lapses
    assert not any(e["message"].startswith("Worker lost") for e in events)
    assert job["finished_at"] - last_step <= LAST_STEP_TO_SUCCEEDED


def test_a_job_cancelled_while_its_checkpoint_is_stored_is_cancelled_at_once(
    cluster: Cluster, settings: Settings
) -> None:
    api = api_client(cluster)
    job_id = create_freeze_job(api, n_epochs=3)
    stored = artifacts.checkpoint_dir(settings, job_id, 3)
    wait(stored.exists, "the first checkpoint to reach the artifacts directory", cluster)
    asked = time.monotonic()
    cancelled = api.post(f"/fine_tuning/jobs/{job_id}/cancel")
    answered = time.monotonic() - asked
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    print(f"\ncancel while storing answered in {answered:.3f} s")
    assert answered < SLOWEST_ANSWER
    wait(lambda: trainer_pids(job_id) == [], "the trainer to be stopped", cluster, timeout=30)
