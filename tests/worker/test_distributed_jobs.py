"""A distributed job (recipe distributed "ddp" or "fsdp", 2 gloo processes on CPU) through the API and
the worker's own code path: it trains and publishes an artifact that loads like a one-process one,
and a cancel stops every rank of it, leaving no trainer process behind, and a paused one resumes
on both ranks (fsdp: from its gathered checkpoint)."""

from __future__ import annotations

import csv
import io
import tarfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.training.test_distributed import ranks_of
from tests.worker.test_jobs import create_job, events
from tests.worker.test_trainer_controls import in_thread, runtime, steps_trained, wait_for
from worker.jobs.run import run_job
from worker.jobs.validate import validate_job
from worker.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DDP = {"type": "lora", "max_seq_length": 64, "distributed": "ddp", "num_gpus": 2}
FSDP = {**DDP, "distributed": "fsdp"}
BOTH = pytest.mark.parametrize("recipe", [DDP, FSDP], ids=["ddp", "fsdp"])
__all__ = ["runtime"]  # the fast-heartbeat runtime of the controls' tests


@pytest.fixture
def backend() -> str:
    return "sqlite"  # distribution is the subject here, not the database


def test_a_ddp_job_trains_on_two_ranks_and_publishes_a_loadable_adapter(
    client: TestClient, runtime: Runtime, training_file: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job_id = create_job(client, training_file, recipe=DDP, hyperparameters={"n_epochs": 1, "batch_size": 4})
    validate_job(runtime, job_id)
    run_job(runtime, job_id)

    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", events(client, job_id)
    # 16 examples, 4 a step over both ranks: rank 0 alone reports, once a step.
    metrics = [
        e
        for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=100").json()["data"]
        if e["type"] == "metrics"
    ]
    assert sorted(int(e["data"]["step"]) for e in metrics) == [1, 2, 3, 4]
    archive = client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter")
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(tmp_path / "download", filter="data")
    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "download" / "adapter"
    )


@BOTH
def test_cancel_stops_every_rank_of_a_distributed_job(
    client: TestClient, runtime: Runtime, training_file: str, recipe: dict
) -> None:
    job_id = create_job(
        client, training_file, recipe=recipe, hyperparameters={"n_epochs": 50, "batch_size": 2}
    )
    validate_job(runtime, job_id)
    worker = in_thread(lambda: run_job(runtime, job_id))
    wait_for(lambda: steps_trained(client, job_id) >= 2, timeout=300, what="training to start")
    spec_path = runtime.settings.jobs_path / job_id / "spec.json"
    assert set(ranks_of(spec_path)) == {0, 1}

    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert "Trainer stopped" in events(client, job_id)
    deadline = time.monotonic() + 10
    while ranks_of(spec_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ranks_of(spec_path) == {}


@BOTH
def test_a_paused_distributed_job_resumes_on_both_ranks_with_every_step_once(
    client: TestClient, runtime: Runtime, training_file: str, recipe: dict
) -> None:
    # 16 examples, 2 a step over both ranks, 6 epochs: 48 steps, so the pause lands mid-training.
    job_id = create_job(
        client, training_file, recipe=recipe, hyperparameters={"n_epochs": 6, "batch_size": 2}
    )
    validate_job(runtime, job_id)
    worker = in_thread(lambda: run_job(runtime, job_id))
    wait_for(lambda: steps_trained(client, job_id) >= 3, timeout=300, what="step 3")
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/pause").json()["status"] == "paused"
    worker.join(timeout=120)
    assert not worker.is_alive()
    paused_at = steps_trained(client, job_id)
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "paused"
    assert paused_at < 48

    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/resume").json()["status"] == "queued"
    run_job(runtime, job_id)

    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    assert f"Fine-tuning job resumed from the checkpoint at step {paused_at}" in events(client, job_id)
    result = client.get(f"/v1/files/{job['result_files'][0]}/content").text
    assert [int(row["step"]) for row in csv.DictReader(io.StringIO(result))] == list(range(1, 49))
