"""The worker's job steps against the real database, storage and broker (no Celery in between:
the end-to-end tests cover the Celery worker process)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import clock
from api.config import Settings
from api.queue import TRAINING_QUEUE, VALIDATION_QUEUE
from tests.api.test_jobs import queued_job_ids
from tests.conftest import TINY_MODEL
from tests.support.tiny_model import toy_chat_examples, write_jsonl
from worker.jobs.progress import record
from worker.jobs.run import run_job
from worker.jobs.validate import validate_job
from worker.runtime import Runtime
from worker.supervisor import read_line


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


class TestRunJob:
    def test_a_job_that_is_not_queued_is_left_alone(
        self, client: TestClient, runtime: Runtime, training_file: str, settings: Settings
    ) -> None:
        job_id = create_job(client, training_file)
        run_job(runtime, job_id)
        assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "validating_files"
        assert queued_job_ids(settings, VALIDATION_QUEUE) == [job_id]


class TestRecordProgress:
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
