"""The storage sweep: objects in the bucket that no row names (an upload, a result file or a job cut
off between its objects and its row) go; everything a row names stays."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.fine_tuning.status import CANCELLED, RUNNING
from api.storage import store_of
from tests.api.test_jobs import create
from tests.support.api_objects import set_status, succeed_with_checkpoints
from tests.support.storage import stored_objects
from worker.runtime import Runtime
from worker.storage_sweep import sweep_storage


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def storage() -> str:
    return "s3"


def test_objects_no_row_names_are_swept_and_the_rest_kept(
    client: TestClient, app, runtime: Runtime, settings: Settings, training_file: str
) -> None:  # type: ignore[no-untyped-def]
    store = store_of(settings)
    succeeded = create(client, training_file).json()["id"]
    succeed_with_checkpoints(app, succeeded, steps=(4,))
    cancelled = create(client, training_file).json()["id"]
    set_status(app, cancelled, RUNNING, CANCELLED)
    running = create(client, training_file).json()["id"]
    set_status(app, running, RUNNING)
    # What processes cut off half-way leave behind:
    store.put_bytes("files/1/file-never-recorded", b"an upload whose commit never came")
    store.put_bytes(f"jobs/{succeeded}/output/trainer/checkpoint-5/weights", b"resumable")
    store.put_bytes(f"artifacts/{cancelled}/adapter/adapter_model.safetensors", b"stored, never recorded")
    # What rows still name:
    store.put_bytes(f"jobs/{running}/output/trainer/checkpoint-5/weights", b"resumable")
    before = stored_objects(settings)

    # An ended job's resumable checkpoints go at once (its row says it will never resume); what may
    # still be waiting for its row is left for the grace period.
    assert sweep_storage(runtime) == {"uploads": 0, "files": 0, "jobs": 1, "adapters": 0}
    assert len(stored_objects(settings)) == len(before) - 1

    swept = sweep_storage(runtime, grace_seconds=-60)  # as if an hour had passed
    assert swept == {"uploads": 0, "files": 1, "jobs": 0, "adapters": 1}
    left = stored_objects(settings)
    assert "files/1/file-never-recorded" not in left
    assert f"files/{training_file}" not in left  # keys are project/file: look by suffix
    assert any(key.endswith(f"/{training_file}") for key in left)
    assert not any(key.startswith((f"jobs/{succeeded}/", f"artifacts/{cancelled}/")) for key in left)
    assert f"jobs/{running}/output/trainer/checkpoint-5/weights" in left
    assert f"artifacts/{succeeded}/adapter/adapter_config.json" in left
    assert f"artifacts/{succeeded}/checkpoints/step-4/adapter_config.json" in left


def test_the_local_backend_has_nothing_to_sweep(runtime: Runtime) -> None:
    local = runtime.settings.model_copy(update={"storage_url": None})
    assert sweep_storage(Runtime(local, runtime.sessions, runtime.file_storage, runtime.model_store)) == {}
