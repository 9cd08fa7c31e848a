"""The worker's job steps against the real database, storage and broker (no Celery in between:
the end-to-end tests cover the Celery worker process)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api import clock
from api.config import Settings
from api.files import repository as files
from api.fine_tuning import artifacts
from api.queue import TRAINING_QUEUE, VALIDATION_QUEUE
from api.tables import FineTuningJob
from tests.api.test_jobs import queued_job_ids
from tests.conftest import TINY_MODEL
from tests.support.tiny_model import toy_chat_examples, write_jsonl
from worker.jobs.progress import record
from worker.jobs.run import run_job
from worker.jobs.stage import stage
from worker.jobs.validate import validate_job
from worker.runtime import Runtime
from worker.supervisor import read_line
from worker.training.progress import Checkpoint, CheckpointMetrics


def create_job(client: TestClient, training_file: str, **fields) -> str:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file, **fields}
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def upload(client: TestClient, path: Path) -> str:
    with path.open("rb") as stream:
        return client.post(
            "/v1/files", files={"file": (path.name, stream)}, data={"purpose": "fine-tune"}
        ).json()["id"]


def events(client: TestClient, job_id: str) -> list[str]:
    return [
        e["message"]
        for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    ]


class TestValidateJob:
    def test_valid_files_queue_the_job_with_resolved_hyperparameters(
        self, client: TestClient, runtime: Runtime, training_file: str, settings: Settings
    ) -> None:
        job_id = create_job(client, training_file, hyperparameters={"batch_size": 2})
        validate_job(runtime, job_id)
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "queued"
        # 16 examples: ceil(100 / 16) = 7 epochs by the auto rule; batch size as given.
        assert job["hyperparameters"] == {"n_epochs": 7, "batch_size": 2, "learning_rate_multiplier": 1.0}
        assert events(client, job_id)[0] == "Files validated, moving job to queued state"
        assert queued_job_ids(settings, TRAINING_QUEUE) == [job_id]

    def test_a_second_delivery_does_nothing(
        self, client: TestClient, runtime: Runtime, training_file: str
    ) -> None:
        job_id = create_job(client, training_file)
        validate_job(runtime, job_id)
        before = events(client, job_id)
        validate_job(runtime, job_id)
        assert events(client, job_id) == before

    def test_too_few_examples_fail_the_job(
        self, client: TestClient, runtime: Runtime, tmp_path: Path, settings: Settings
    ) -> None:
        small = upload(client, write_jsonl(tmp_path / "small.jsonl", toy_chat_examples(7)))
        job_id = create_job(client, small)
        validate_job(runtime, job_id)
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "failed"
        assert job["error"] == {
            "code": "invalid_n_examples",
            "message": "Training file has 7 example(s), but must have at least 10 examples",
            "param": "training_file",
        }
        assert job["finished_at"] is not None
        assert queued_job_ids(settings, TRAINING_QUEUE) == []
        assert "Fine-tuning job failed" in events(client, job_id)[0]

    def test_a_preference_file_fails_a_supervised_job(
        self, client: TestClient, runtime: Runtime, tmp_path: Path
    ) -> None:
        pair = {
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello!"}],
            "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
        }
        preference = upload(client, write_jsonl(tmp_path / "dpo.jsonl", [pair] * 12))
        job_id = create_job(client, preference)
        validate_job(runtime, job_id)
        error = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["error"]
        assert error["code"] == "invalid_training_file"
        assert "12 preference example(s)" in error["message"]

    def test_the_lease_is_held_while_checking_and_let_go_after(
        self, client: TestClient, runtime: Runtime, training_file: str
    ) -> None:
        job_id = create_job(client, training_file)
        validate_job(runtime, job_id)
        with runtime.sessions() as session:
            job = session.scalar(select(FineTuningJob).where(FineTuningJob.id == job_id))
            assert job is not None and job.status == "queued"
            assert job.lease_owner is None and job.lease_expires_at is None

    def test_a_job_another_worker_is_validating_is_left_to_it(
        self, client: TestClient, runtime: Runtime, training_file: str
    ) -> None:
        job_id = create_job(client, training_file)
        before = events(client, job_id)
        with runtime.sessions.begin() as session:
            session.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id)
                .values(lease_owner="other:1:x", lease_expires_at=clock.now() + 60)
            )
        validate_job(runtime, job_id)
        assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "validating_files"
        assert events(client, job_id) == before


class TestStage:
    def test_the_training_file_is_linked_not_copied(
        self, client: TestClient, runtime: Runtime, training_file: str
    ) -> None:
        job_id = create_job(client, training_file)
        validate_job(runtime, job_id)
        spec = stage(runtime, job_id)
        with runtime.sessions() as session:
            key = files.get_any_project(session, training_file).storage_key  # type: ignore[union-attr]
        assert Path(spec.training_file).stat().st_ino == runtime.file_storage.local_path(key).stat().st_ino  # type: ignore[union-attr]
        assert Path(spec.output_dir).parent == runtime.settings.jobs_path / job_id
        assert (runtime.settings.jobs_path / job_id / "spec.json").is_file()


class TestRunJob:
    def test_a_job_that_is_not_queued_is_left_alone(
        self, client: TestClient, runtime: Runtime, training_file: str, settings: Settings
    ) -> None:
        job_id = create_job(client, training_file)
        run_job(runtime, job_id)
        assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "validating_files"
        assert queued_job_ids(settings, VALIDATION_QUEUE) == [job_id]


class TestRecordProgress:
    def test_a_checkpoint_is_moved_into_place_then_listed(
        self, client: TestClient, runtime: Runtime, training_file: str
    ) -> None:
        job_id = create_job(client, training_file)
        written = runtime.settings.jobs_path / job_id / "output" / "checkpoints" / "step-3"
        written.mkdir(parents=True)
        (written / "model.safetensors").write_bytes(b"weights")
        inode = (written / "model.safetensors").stat().st_ino
        event = Checkpoint(step=3, epoch=1, artifact_dir=str(written), metrics=CheckpointMetrics(step=3))
        record(runtime, job_id, event, started=clock.now())
        stored = artifacts.checkpoint_dir(runtime.settings, job_id, 3) / "model.safetensors"
        assert stored.read_bytes() == b"weights" and stored.stat().st_ino == inode  # moved, not copied
        assert not written.exists()
        listed = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
        assert [c["step_number"] for c in listed] == [3]

    def test_an_artifact_outside_the_work_directory_is_refused(
        self, client: TestClient, runtime: Runtime, training_file: str, tmp_path: Path
    ) -> None:
        job_id = create_job(client, training_file)
        elsewhere = tmp_path / "base-model"
        elsewhere.mkdir()
        event = Checkpoint(step=3, epoch=1, artifact_dir=str(elsewhere), metrics=CheckpointMetrics(step=3))
        with pytest.raises(RuntimeError, match="outside its work directory"):
            record(runtime, job_id, event, started=clock.now())
        assert elsewhere.is_dir()

    def test_a_line_the_worker_cannot_read_is_a_warning_naming_it(
        self, client: TestClient, runtime: Runtime, training_file: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        job_id = create_job(client, training_file)
        line = b'{"event": "progress", "step": 3}\n'
        with caplog.at_level(logging.WARNING, logger="tunery.worker.supervisor"):
            record(runtime, job_id, read_line(line), started=clock.now())
        newest = client.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"][0]
        assert newest["level"] == "warn"
        assert "unknown event 'progress'" in newest["message"]
        assert '{"event": "progress", "step": 3}' in newest["message"]
        assert any('"progress"' in entry.getMessage() for entry in caplog.records)
