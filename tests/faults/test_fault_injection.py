"""Faults injected into real processes: killed workers and trainers, a killed API, an emptied
broker, a duplicated message and a graceful shutdown. Each job must still finish exactly once,
with the result a clean run gives.

Everything runs on PostgreSQL and Redis, with the API and workers as separate processes started
the way an operator starts them, and short leases so that a lost worker is noticed in seconds.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from openai import OpenAI
from sqlalchemy import select

from api import queue
from api.config import Settings
from api.db import make_engine
from api.models.store import ModelStore
from api.tables import FineTuningJob
from tests.api.test_jobs import queued_job_ids
from tests.conftest import TINY_MODEL
from tests.support import waiting
from tests.support.processes import Cluster, trainer_pids, unread_bytes
from tests.support.tiny_model import jsonl, toy_chat_examples

# This file's jobs take a while on a loaded machine: a longer default wait.
wait = functools.partial(waiting.wait, timeout=180, interval=0.3)


pytestmark = pytest.mark.e2e
FAST_FAILURE = {
    "TUNERY_LEASE_SECONDS": "4",
    "TUNERY_HEARTBEAT_SECONDS": "0.5",
    "TUNERY_RECONCILE_SECONDS": "1",
    "TUNERY_CHECKPOINT_EVERY_STEPS": "5",
}
STEPS = 96  # 32 examples, batch 1, 3 epochs: long enough that a fault lands mid-training


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def cluster(settings: Settings, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    running = Cluster(settings, tmp_path / "logs", extra_env=FAST_FAILURE)
    try:
        yield running
    finally:
        running.stop_all()


def sdk(cluster: Cluster) -> OpenAI:
    return OpenAI(base_url=cluster.base_url, api_key=cluster.api_key)


def broker_is_empty(settings: Settings) -> bool:
    """No message waits on a queue or is delivered and not yet acknowledged (kombu's Redis layout)."""
    assert settings.broker_url is not None
    client = redis.Redis.from_url(settings.broker_url)
    try:
        waiting = client.llen(queue.TRAINING_QUEUE) + client.llen(queue.VALIDATION_QUEUE)
        return waiting == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def create_job(client: OpenAI, batch_size: int = 1, recipe: dict | None = None) -> str:
    body = jsonl(toy_chat_examples(32))
    training = client.files.create(file=("train.jsonl", body), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=training,
        hyperparameters={"n_epochs": 3, "batch_size": batch_size},
        extra_body={"recipe": recipe} if recipe else None,
    )
    return job.id


def status(client: OpenAI, job_id: str) -> str:
    return str(client.fine_tuning.jobs.with_raw_response.retrieve(job_id).http_response.json()["status"])


def messages(client: OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data]


def last_step(client: OpenAI, job_id: str) -> int:
    events = client.fine_tuning.jobs.list_events(job_id, limit=1000).data
    return next((int((e.data or {})["step"]) for e in events if e.type == "metrics"), 0)


def assert_finished_like_a_clean_run(client: OpenAI, job_id: str, steps: int = STEPS) -> None:
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded", job.error
    rows = list(csv.DictReader(io.StringIO(client.files.content(job.result_files[0]).text)))
    assert [int(row["step"]) for row in rows] == list(range(1, steps + 1))
    epochs = [steps, steps * 2 // 3, steps // 3]
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id)] == epochs
    assert sum(m.startswith("New fine-tuned model created") for m in messages(client, job_id)) == 1


def stored_resume_step(cluster: Cluster, job_id: str) -> int:
    """The step of the checkpoint the job would resume from now (0: none yet), as the worker recorded
    it once the checkpoint was stored."""
    engine = make_engine(cluster.settings)
    try:
        with engine.connect() as connection:
            step = connection.scalar(select(FineTuningJob.resume_step).where(FineTuningJob.id == job_id))
    finally:
        engine.dispose()
    return int(step or 0)


def kill_worker_then_resume_on_another(
    cluster: Cluster,
    client: OpenAI,
    doomed: subprocess.Popen,
    job_id: str,
    ranks: int | None = None,
    next_worker_env: dict[str, str] | None = None,
) -> int:
    """SIGKILL the worker and its trainer processes (`ranks` of them, when given) past step 12, once
    the checkpoint of step 10 is stored; start a fresh worker (with `next_worker_env` over the
    cluster's), wait for the job to succeed there, and return the step it resumed from.

    Past step 12 alone is not enough: a trainer with a core to itself can reach it while the worker
    is still storing the checkpoint of step 5 in the bucket, and the job then rightly starts over."""
    wait(
        lambda: last_step(client, job_id) >= 12 and stored_resume_step(cluster, job_id) >= 10,
        "step 12 with the checkpoint of step 10 stored",
        cluster,
    )
    trainers = trainer_pids(job_id)
    assert trainers, "no trainer process found"
    assert ranks is None or len(trainers) == ranks, trainers
    doomed.send_signal(signal.SIGKILL)
    for pid in trainers:
        os.kill(pid, signal.SIGKILL)
    doomed.wait()

    cluster.start_worker(env=next_worker_env)
    wait(lambda: status(client, job_id) == "succeeded", "the job to finish on the new worker", cluster)
    history = messages(client, job_id)
    lost = next(
        m for m in history if m.startswith("Worker lost; the job is queued again to resume from step")
    )
    resumed_at = int(lost.rsplit(" ", 1)[1])
    assert f"Fine-tuning job resumed from the checkpoint at step {resumed_at} (attempt 2 of 3)" in history
    return resumed_at


def test_a_killed_worker_and_trainer_lose_only_the_steps_since_the_last_checkpoint(cluster: Cluster) -> None:
    cluster.start_api()
    doomed = cluster.start_worker()
    client = sdk(cluster)
    job_id = create_job(client)
    resumed_at = kill_worker_then_resume_on_another(cluster, client, doomed, job_id)
    assert resumed_at >= 10  # checkpoints every 5 steps: at most the steps since the last one are lost
    assert_finished_like_a_clean_run(client, job_id)


def test_a_killed_worker_and_its_fsdp_ranks_lose_only_the_steps_since_the_last_checkpoint(
    cluster: Cluster,
) -> None:
    cluster.start_api()
    doomed = cluster.start_worker()
    client = sdk(cluster)
    # 32 examples, 2 a step (one on each rank), 3 epochs: 48 steps; a gathered checkpoint every 5.
    recipe = {"type": "lora", "max_seq_length": 64, "distributed": "fsdp", "num_gpus": 2}
    job_id = create_job(client, batch_size=2, recipe=recipe)
    resumed_at = kill_worker_then_resume_on_another(cluster, client, doomed, job_id, ranks=2)
    assert resumed_at >= 10
    assert_finished_like_a_clean_run(client, job_id, steps=48)


def test_a_sigterm_hands_the_job_back_and_another_worker_finishes_it(cluster: Cluster) -> None:
    cluster.start_api()
    leaving = cluster.start_worker()
    client = sdk(cluster)
    job_id = create_job(client)
    wait(lambda: last_step(client, job_id) >= 8, "step 8", cluster)
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=120) == 0  # a clean exit: a pod replacement is not a failure
    assert trainer_pids(job_id) == []
    history = messages(client, job_id)
    handed_back = next(m for m in history if m.startswith("Worker shutting down: checkpoint saved at step"))
    assert status(client, job_id) == "queued", handed_back

    cluster.start_worker()
    wait(lambda: status(client, job_id) == "succeeded", "the job to finish", cluster)
    assert not any(m.startswith("Worker lost") for m in messages(client, job_id))
    assert_finished_like_a_clean_run(client, job_id)


def test_an_emptied_broker_loses_no_job(cluster: Cluster, settings: Settings) -> None:
    cluster.start_api()
    client = sdk(cluster)
    job_id = create_job(client)  # no worker yet: its message waits in Redis
    assert queued_job_ids(settings, queue.VALIDATION_QUEUE) == [job_id]
    assert settings.broker_url is not None
    redis.Redis.from_url(settings.broker_url).flushdb()  # a Redis restart without persistence
    cluster.start_worker()
    wait(lambda: status(client, job_id) == "succeeded", "the job to run anyway", cluster)
    assert_finished_like_a_clean_run(client, job_id)


def test_a_message_delivered_twice_trains_once(cluster: Cluster, settings: Settings) -> None:
    cluster.start_api()
    cluster.start_worker()
    cluster.start_worker()
    client = sdk(cluster)
    job_id = create_job(client)
    wait(lambda: status(client, job_id) in ("queued", "running"), "validation", cluster)
    queue.enqueue(settings, queue.RUN_JOB, job_id)  # what a redelivery after a lost ack looks like
    queue.enqueue(settings, queue.RUN_JOB, job_id)
    wait(lambda: status(client, job_id) == "succeeded", "the job to finish", cluster)
    wait(lambda: broker_is_empty(settings), "the extra messages to be consumed", cluster)
    history = messages(client, job_id)
    assert sum(m.startswith("Fine-tuning job started") for m in history) == 1
    assert client.fine_tuning.jobs.retrieve(job_id).status == "succeeded"
    assert_finished_like_a_clean_run(client, job_id)


def test_a_killed_api_loses_no_stored_object(cluster: Cluster) -> None:
    cluster.start_api()
    client = sdk(cluster)
    body = jsonl(toy_chat_examples(10))
    files = [client.files.create(file=(f"f{i}.jsonl", body), purpose="fine-tune").id for i in range(3)]
    jobs = [client.fine_tuning.jobs.create(model=TINY_MODEL, training_file=files[0]).id for _ in range(3)]
    assert cluster.api is not None
    cluster.api.send_signal(signal.SIGKILL)
    cluster.api.wait()
    cluster.start_api()
    assert {f.id for f in client.files.list()} >= set(files)
    assert [j.id for j in client.fine_tuning.jobs.list()] == jobs[::-1]
    assert all(client.files.content(f).content == body for f in files)


def test_an_upload_cut_off_by_a_killed_api_never_appears(cluster: Cluster) -> None:
    cluster.start_api()
    client = sdk(cluster)
    before = {f.id for f in client.files.list()}
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        boundary = b"--cut\r\n"
        yield boundary + b'Content-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'
        for example in toy_chat_examples(10):
            yield json.dumps(example).encode() + b"\n"
        sent.set()
        time.sleep(30)  # the API dies here, mid-body
        yield b"\r\n--cut--\r\n"

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{cluster.base_url}/files",
                content=slow_body(),
                headers={
                    "Authorization": f"Bearer {cluster.api_key}",
                    "Content-Type": "multipart/form-data; boundary=cut",
                },
                timeout=60,
            )

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    assert sent.wait(30)
    # Mid-body, with what was sent so far read by the API: the kill lands inside its parsing.
    wait(lambda: unread_bytes(cluster.port) == 0, "the API to read what was sent", cluster, timeout=30)
    assert cluster.api is not None
    cluster.api.send_signal(signal.SIGKILL)
    cluster.api.wait()
    cluster.start_api()
    assert {f.id for f in client.files.list()} == before
