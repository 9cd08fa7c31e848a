"""Cancel, pause and resume reach a real trainer: the worker's watcher reads the job row and stops
the trainer process; a resumed job continues from the checkpoint the pause saved."""

from __future__ import annotations

import csv
import functools
import io
import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.db import make_engine, make_sessionmaker
from api.files.storage import FileStorage
from api.fine_tuning import artifacts
from api.models.store import ModelStore
from tests.support import waiting
from tests.worker.test_jobs import create_job, events
from worker.jobs.claim import claim
from worker.jobs.finish import finish
from worker.jobs.run import run_job
from worker.jobs.validate import validate_job
from worker.runtime import Runtime
from worker.supervisor import Action, TrainerExit
from worker.training.progress import Completed

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(settings: Settings):  # type: ignore[no-untyped-def]
    fast = settings.model_copy(update={"heartbeat_seconds": 0.3, "checkpoint_every_minutes": None})
    engine = make_engine(fast)
    yield Runtime(fast, make_sessionmaker(engine), FileStorage.of(fast), ModelStore(fast.models_path))
    engine.dispose()


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


# The trainer runs in-process here: poll often, allow it two minutes.
wait_for = functools.partial(waiting.wait, timeout=120, interval=0.1)


def steps_trained(client: TestClient, job_id: str) -> int:
    """The step of the newest metrics event."""
    data = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    return next((int(e["data"]["step"]) for e in data if e["type"] == "metrics"), 0)


def queued(client: TestClient, runtime: Runtime, training_file: str, n_epochs: int) -> str:
    job_id = create_job(client, training_file, hyperparameters={"n_epochs": n_epochs, "batch_size": 1})
    validate_job(runtime, job_id)
    return job_id


def test_cancel_stops_the_running_trainer_within_seconds(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    job_id = queued(client, runtime, training_file, n_epochs=50)
    worker = in_thread(lambda: run_job(runtime, job_id))
    wait_for(lambda: steps_trained(client, job_id) >= 2, what="training to start")
    asked = time.monotonic()
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert time.monotonic() - asked < 10
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None
    assert "Trainer stopped" in events(client, job_id)
    assert steps_trained(client, job_id) < 50 * 16
    assert not (runtime.settings.jobs_path / job_id).exists()


def test_pause_checkpoints_and_resume_finishes_with_every_step_once(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    # 16 examples, 8 epochs: 128 steps, so the pause (seen within a heartbeat) lands mid-training.
    job_id = queued(client, runtime, training_file, n_epochs=8)
    worker = in_thread(lambda: run_job(runtime, job_id))
    wait_for(lambda: steps_trained(client, job_id) >= 10, what="step 10")
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/pause").json()["status"] == "paused"
    worker.join(timeout=60)
    assert not worker.is_alive()
    paused = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert paused["status"] == "paused"
    paused_at = steps_trained(client, job_id)
    assert any(m.startswith(f"Paused at step {paused_at}") for m in events(client, job_id))
    assert paused_at < 128

    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/resume").json()["status"] == "queued"
    run_job(runtime, job_id)
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    messages = events(client, job_id)
    assert f"Fine-tuning job resumed from the checkpoint at step {paused_at}" in messages
    assert any(m.startswith(f"Resumed from checkpoint at step {paused_at}") for m in messages)

    result = client.get(f"/v1/files/{job['result_files'][0]}/content").text
    rows = list(csv.DictReader(io.StringIO(result)))
    assert [int(r["step"]) for r in rows] == list(range(1, 129))

    checkpoints = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints][:3] == [128, 112, 96] and len(checkpoints) == 8
    assert checkpoints[0]["fine_tuned_model_checkpoint"] == f"{job['fine_tuned_model']}:ckpt-step-128"
    assert all(c["metrics"]["train_loss"] is not None for c in checkpoints)


def trained_model(runtime: Runtime, job_id: str) -> Completed:
    """What a trainer leaves when it completes: its model and result file in the job's work directory."""
    output = runtime.settings.jobs_path / job_id / "output"
    adapter = output / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    results = output / "step_metrics.csv"
    results.write_text("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.0,0.5,,\n")
    return Completed(
        trained_tokens=10, artifact_dir=str(adapter), artifact_format="peft", result_file=str(results)
    )


@pytest.mark.parametrize("status_then", ["paused", "queued"])
def test_a_run_that_finished_before_the_pause_reached_it_is_kept(
    client: TestClient, runtime: Runtime, training_file: str, status_then: str
) -> None:
    """The trainer's last steps can outrun a pause (or a pause and a resume): its model stands."""
    job_id = queued(client, runtime, training_file, n_epochs=1)
    assert claim(runtime, job_id)
    client.post(f"/v1/fine_tuning/jobs/{job_id}/pause")
    if status_then == "queued":
        client.post(f"/v1/fine_tuning/jobs/{job_id}/resume")
    completed = trained_model(runtime, job_id)
    finish(runtime, job_id, TrainerExit(0, completed, "", Action.STOP))
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["fine_tuned_model"]
    assert "Training finished before the pause took effect" in events(client, job_id)
    assert (artifacts.adapter_dir(runtime.settings, job_id) / "adapter_config.json").is_file()


def test_a_run_cancelled_as_it_completed_leaves_no_model(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    """The cancel lands while the finished model is being stored: the cancel wins, nothing is kept."""
    job_id = queued(client, runtime, training_file, n_epochs=1)
    assert claim(runtime, job_id)
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    finish(runtime, job_id, TrainerExit(0, trained_model(runtime, job_id), "", Action.KILL))
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None and job["result_files"] == []
    assert "Trainer stopped" in events(client, job_id)
    assert not artifacts.adapter_dir(runtime.settings, job_id).exists()
    assert not (runtime.settings.jobs_path / job_id).exists()
    staging = runtime.settings.files_path / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
