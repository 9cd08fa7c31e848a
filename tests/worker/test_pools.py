"""Job create places a job on a GPU pool that fits it, and every message for it goes to that pool's
training queue (validation done, the reconciler's re-enqueue, resume); a job no pool fits is a 400
saying what it needs; with no GPU workers everything runs on the default pool as before."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.config import Settings
from api.queue import TRAINING_QUEUE, training_queue, worker_queues
from api.tables import FineTuningJob
from tests.api.test_jobs import queued_job_ids
from tests.conftest import TINY_MODEL
from tests.estimates.pools import GIB, register_worker
from tests.worker.test_reconciler import age, empty_the_broker
from worker.jobs.validate import validate_job
from worker.reconciler import reconcile
from worker.runtime import Runtime

MIB = 2**20


def create(client: TestClient, training_file: str, **fields):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file, **fields}
    )


def pool_of(runtime: Runtime, job_id: str) -> str | None:
    with runtime.sessions() as session:
        return session.scalar(select(FineTuningJob.pool).where(FineTuningJob.id == job_id))


def test_a_pool_trains_from_a_queue_of_its_own() -> None:
    assert training_queue(None) == training_queue("default") == TRAINING_QUEUE
    assert training_queue("a100") == "tunery.training.a100"
    assert "tunery.training.a100" in worker_queues("a100")
    assert TRAINING_QUEUE not in worker_queues("a100")


def test_without_gpu_workers_jobs_train_on_the_default_pool(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    register_worker(runtime.sessions, "cpu:1", "default", 0, 0)
    job_id = create(client, training_file).json()["id"]

    validate_job(runtime, job_id)

    assert pool_of(runtime, job_id) is None
    assert queued_job_ids(settings, TRAINING_QUEUE) == [job_id]


def test_a_job_goes_to_the_smallest_pool_that_fits_and_stays_there(
    client: TestClient, runtime: Runtime, training_file: str, settings: Settings
) -> None:
    register_worker(runtime.sessions, "tiny:1", "tiny", 1, 1 * MIB)
    register_worker(runtime.sessions, "mid:1", "mid", 1, 24 * GIB)
    register_worker(runtime.sessions, "big:1", "big", 8, 80 * GIB)
    job_id = create(client, training_file).json()["id"]
    assert pool_of(runtime, job_id) == "mid"

    validate_job(runtime, job_id)
    assert queued_job_ids(settings, "tunery.training.mid") == [job_id]
    assert queued_job_ids(settings, TRAINING_QUEUE) == []

    empty_the_broker(settings)
    age(runtime, job_id)
    assert reconcile(runtime)["enqueued"] == [job_id]
    assert queued_job_ids(settings, "tunery.training.mid") == [job_id]

    empty_the_broker(settings)
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/pause").status_code == 200
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/resume").status_code == 200
    assert queued_job_ids(settings, "tunery.training.mid") == [job_id]


def test_a_job_that_needs_more_gpus_than_a_machine_has_goes_where_there_are_enough(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    register_worker(runtime.sessions, "one:1", "one", 1, 80 * GIB)
    register_worker(runtime.sessions, "four:1", "four", 4, 24 * GIB)
    recipe = {"type": "full", "distributed": "ddp", "num_gpus": 4}
    job_id = create(client, training_file, recipe=recipe).json()["id"]

    assert pool_of(runtime, job_id) == "four"


def test_a_job_that_fits_no_pool_is_refused_saying_what_it_needs(
    app, client: TestClient, runtime: Runtime, training_file: str
) -> None:
    register_worker(runtime.sessions, "tiny:1", "tiny", 1, 1 * MIB)
    register_worker(runtime.sessions, "tiny:2", "tiny", 1, 2 * MIB)
    before = client.get("/v1/fine_tuning/jobs").json()["data"]

    response = create(client, training_file, recipe={"type": "full", "distributed": "ddp", "num_gpus": 2})

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "job_too_large" and error["param"] == "recipe"
    assert error["message"].startswith("This job needs 2 GPUs with ")
    assert "the largest pool (tiny) has 1 x 2.0 MiB" in error["message"]
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == before
