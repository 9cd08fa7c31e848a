"""Jobs with recipe num_nodes 2 on a Ray cluster of two CPU nodes (gloo), each node in a network
namespace of the test's own, driven through the API with the official openai SDK: an FSDP job over
2 nodes x 1 process trains and its adapter loads; a node killed mid-run fails the attempt cleanly,
saying what failed, with no process left behind; and nothing of it touches the machine's address."""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import assert_adapter_generates, wait_for_terminal
from tests.support.processes import LiveService, live_service, trainer_pids
from tests.support.ray_cluster import RayCluster, SocketWatch, namespace_pids
from tests.support.services import free_port
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TWO_NODES = {"type": "lora", "distributed": "fsdp", "num_gpus": 1, "num_nodes": 2}


@contextmanager
def watching_sockets(cluster: RayCluster) -> Iterator[SocketWatch]:
    watch = SocketWatch(cluster)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            watch.sample()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield watch
    finally:
        done.set()
        sampler.join(timeout=30)


def create_job(client: OpenAI, tmp_path: Path, n_epochs: int) -> str:
    dataset = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_examples(24))
    uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        hyperparameters={"n_epochs": n_epochs, "batch_size": 4, "learning_rate_multiplier": 25},
        extra_body={"recipe": TWO_NODES},
    )
    return created.id


def events(client: OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]


def trained(client: OpenAI, job_id: str) -> bool:
    return any(m.startswith("Step ") for m in events(client, job_id))


def wait_until(what: str, condition: Callable[[], bool], service: LiveService, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout}s:\n{service.log_tail()}"
        time.sleep(1)


def ray_jobs_running(cluster: RayCluster, job_id: str) -> list[str]:
    from ray.job_submission import JobSubmissionClient

    return [
        str(details.submission_id)
        for details in JobSubmissionClient(cluster.address).list_jobs()
        if (details.metadata or {}).get("tunery_job") == job_id
        and str(details.status) not in ("SUCCEEDED", "FAILED", "STOPPED")
    ]


def test_an_fsdp_job_over_two_nodes_succeeds_and_talks_only_to_the_test_hosts(
    cluster: RayCluster, cluster_service: LiveService, tmp_path: Path, tiny_model_dir: Path
) -> None:
    client = OpenAI(base_url=cluster_service.base_url, api_key=cluster_service.api_key)
    with watching_sockets(cluster) as sockets:
        job_id = create_job(client, tmp_path, n_epochs=2)
        job, _ = wait_for_terminal(client, job_id, cluster_service, timeout=420)

    assert job.status == "succeeded", f"{job.error}\n{cluster_service.log_tail()}"
    messages = events(client, job.id)
    sharded = "fsdp: 2 LlamaDecoderLayer blocks and the root sharded over 2 ranks"
    assert any(m.startswith(sharded) for m in messages), messages
    assert any(m.startswith("Step ") for m in messages), "no metrics relayed from the cluster"
    archive = httpx.get(
        f"{cluster_service.base_url}/fine_tuning/jobs/{job.id}/adapter",
        headers={"Authorization": f"Bearer {cluster_service.api_key}"},
        timeout=30,
    )
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:") as tar:
        tar.extractall(tmp_path / "download", filter="data")
    assert_adapter_generates(tiny_model_dir, tmp_path / "download" / "adapter")
    # The rule of this machine, checked with `ss` while the job ran.
    assert sockets.offending == [], "\n".join(sockets.offending[:20])
    assert sockets.driver_connections > 0, "never saw the driver's connection to the head"
    assert sockets.cross_node_connections > 0, "never saw the nodes talk to each other"


def test_a_killed_node_fails_the_attempt_cleanly(
    cluster: RayCluster, cluster_service: LiveService, tmp_path: Path
) -> None:
    client = OpenAI(base_url=cluster_service.base_url, api_key=cluster_service.api_key)
    job_id = create_job(client, tmp_path, n_epochs=40)
    wait_until("training", lambda: trained(client, job_id), cluster_service)

    with watching_sockets(cluster) as sockets:
        killed = cluster.kill_node(1)
        assert killed, "node 1 had no processes to kill"
        job, _ = wait_for_terminal(client, job_id, cluster_service, timeout=300)

    assert job.status == "failed", f"{job.status}\n{cluster_service.log_tail()}"
    assert job.error is not None
    # What failed, the cause first: the killed node's rank, then rank 0 meeting it gone.
    lost = re.compile(r"^rank [01] of 2 was lost with its Ray worker \(its node died or was stopped\)")
    assert lost.match(job.error.message), job.error.message
    failure = [m for m in events(client, job_id) if m.startswith("Fine-tuning job failed")]
    assert failure and "was lost with its Ray worker" in failure[0], failure
    deadline = time.monotonic() + 30
    while (left := trainer_pids(job_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"trainer processes left behind: {left}"
    assert namespace_pids(cluster.nodes[1].namespace) == []
    assert sockets.offending == [], "\n".join(sockets.offending[:20])


def test_pause_checkpoints_the_run_on_the_cluster_and_resume_and_cancel_follow(
    cluster: RayCluster, cluster_service: LiveService, tmp_path: Path
) -> None:
    client = OpenAI(base_url=cluster_service.base_url, api_key=cluster_service.api_key)
    job_id = create_job(client, tmp_path, n_epochs=40)
    wait_until("training", lambda: trained(client, job_id), cluster_service)

    client.fine_tuning.jobs.pause(job_id)
    paused = re.compile(r"^Paused at step (\d+): checkpoint saved$")
    wait_until("the pause", lambda: any(paused.match(m) for m in events(client, job_id)), cluster_service)
    assert client.fine_tuning.jobs.retrieve(job_id).status == "paused"
    assert ray_jobs_running(cluster, job_id) == []
    assert trainer_pids(job_id) == []
    step = max(int(match.group(1)) for m in events(client, job_id) if (match := paused.match(m)))

    client.fine_tuning.jobs.resume(job_id)
    later = re.compile(r"^Step (\d+)/")

    def trains_past_the_pause() -> bool:
        return any((match := later.match(m)) and int(match.group(1)) > step for m in events(client, job_id))

    wait_until("training after the resume", trains_past_the_pause, cluster_service)
    client.fine_tuning.jobs.cancel(job_id)
    job, _ = wait_for_terminal(client, job_id, cluster_service, timeout=120)

    assert job.status == "cancelled"
    wait_until("the Ray job's end", lambda: ray_jobs_running(cluster, job_id) == [], cluster_service, 60)
    wait_until("the trainers' end", lambda: trainer_pids(job_id) == [], cluster_service, 60)


def test_a_job_the_cluster_cannot_place_fails_saying_so(
    cluster: RayCluster, cluster_service: LiveService, tmp_path: Path
) -> None:
    client = OpenAI(base_url=cluster_service.base_url, api_key=cluster_service.api_key)
    dataset = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_examples(24))
    uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL, training_file=uploaded.id, extra_body={"recipe": {**TWO_NODES, "num_nodes": 3}}
    )
    job, _ = wait_for_terminal(client, created.id, cluster_service, timeout=300)

    assert job.status == "failed", cluster_service.log_tail()
    assert job.error is not None
    assert job.error.message.startswith(
        "the Ray cluster could not place 3 ranks (1 CPU each, one a node) within 60 s: it has 2 live nodes"
    ), job.error.message
    messages = events(client, created.id)
    assert any(m.startswith("Submitted to the Ray cluster at ") for m in messages), messages
    assert "Waiting for the Ray cluster to place 3 ranks (1 CPU each, one a node)" in messages
    wait_until("the Ray job's end", lambda: ray_jobs_running(cluster, created.id) == [], cluster_service, 60)


def test_a_cluster_that_does_not_answer_fails_the_job_saying_so(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with live_service(settings, tmp_path / "logs", extra_env={"TUNERY_RAY_ADDRESS": address}) as service:
        client = OpenAI(base_url=service.base_url, api_key=service.api_key)
        job, _ = wait_for_terminal(client, create_job(client, tmp_path, n_epochs=1), service, timeout=180)

    assert job.status == "failed"
    assert job.error is not None
    assert job.error.message.startswith(f"the Ray cluster at {address} did not take the run: "), job.error
