"""Two workers that share nothing but Postgres, Redis and the bucket: a job started on one that is
killed resumes on the other from the checkpoint in the bucket, and succeeds as a clean run does.

Each process has a data directory of its own (the API's, worker A's, worker B's); only the base
models are shared, as deploy/README.md says they are (a volume every node mounts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.faults.test_fault_injection import (
    FAST_FAILURE,
    assert_finished_like_a_clean_run,
    create_job,
    kill_worker_then_resume_on_another,
    sdk,
)
from tests.support.processes import Cluster
from tests.support.storage import stored_objects

pytestmark = pytest.mark.e2e


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def storage() -> str:
    return "s3"


@pytest.fixture
def cluster(settings: Settings, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    shared = {**FAST_FAILURE, "TUNERY_MODEL_STORE": str(settings.models_path)}
    running = Cluster(settings, tmp_path / "logs", extra_env=shared)
    try:
        yield running
    finally:
        running.stop_all()


def own_data_dir(tmp_path: Path, name: str) -> dict[str, str]:
    directory = tmp_path / name
    directory.mkdir()
    return {"TUNERY_DATA_DIR": str(directory)}


def test_a_job_of_a_killed_worker_resumes_on_another_from_the_bucket(
    cluster: Cluster, settings: Settings, tmp_path: Path
) -> None:
    cluster.start_api()
    worker_a, worker_b = own_data_dir(tmp_path, "worker-a"), own_data_dir(tmp_path, "worker-b")
    doomed = cluster.start_worker(env=worker_a)
    client = sdk(cluster)
    job_id = create_job(client)

    resumed_at = kill_worker_then_resume_on_another(cluster, client, doomed, job_id, next_worker_env=worker_b)

    assert resumed_at >= 10  # checkpoints every 5 steps: at most the steps since the last one are lost
    assert_finished_like_a_clean_run(client, job_id)  # the result file read back from the bucket
    # Worker B trained on from the checkpoint it downloaded, not from the start.
    events = list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=1000).data))
    resumed = next(i for i, e in enumerate(events) if e.message.startswith("Fine-tuning job resumed"))
    first_step = next(int((e.data or {})["step"]) for e in events[resumed:] if e.type == "metrics")
    assert first_step == resumed_at + 1, (resumed_at, first_step)
    # Worker A's disk holds the run's first part only: worker B never saw it.
    assert (tmp_path / "worker-a" / "jobs" / job_id).is_dir()
    assert not (tmp_path / "worker-b" / "artifacts").exists()
    stored = stored_objects(settings)
    assert f"artifacts/{job_id}/adapter/tunery.json" in stored
    assert any(key.startswith(f"artifacts/{job_id}/checkpoints/step-96/") for key in stored)
    assert not any(key.startswith(f"jobs/{job_id}/") for key in stored)  # resumable ones: removed
    # The API's data directory holds no file, artifact or checkpoint: they all live in the bucket.
    assert not (settings.data_path / "files").exists() or not any(
        p.is_file() for p in (settings.data_path / "files").rglob("*")
    )
    assert not (settings.data_path / "artifacts").exists()
