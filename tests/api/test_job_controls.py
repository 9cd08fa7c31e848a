"""Cancel, pause and resume through the API: the rules on the job row (the worker obeys the row)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.queue import TRAINING_QUEUE
from tests.api.test_jobs import create, queued_job_ids
from tests.support.api_objects import set_status, succeed_with_checkpoints

pytestmark = pytest.mark.integration


def events(client: TestClient, job_id: str) -> list[str]:
    return [
        e["message"] for e in client.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=100").json()["data"]
    ]


class TestCancel:
    @pytest.mark.parametrize("status", ["validating_files", "queued", "running", "paused"])
    def test_an_unfinished_job_can_be_cancelled(
        self, client: TestClient, app, training_file: str, status: str
    ) -> None:  # type: ignore[no-untyped-def]
        job = create(client, training_file).json()
        if status == "paused":
            set_status(app, job["id"], "running", "paused")
        elif status != "validating_files":
            set_status(app, job["id"], status)
        response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert response.json()["finished_at"] is not None
        assert "Fine-tuning job cancelled by the user" in events(client, job["id"])

    @pytest.mark.parametrize("final", ["succeeded", "failed", "cancelled"])
    def test_a_finished_job_answers_400_not_409(
        self, client: TestClient, app, training_file: str, final: str
    ) -> None:  # type: ignore[no-untyped-def]
        job = create(client, training_file).json()
        if final == "succeeded":
            succeed_with_checkpoints(app, job["id"])
        else:
            set_status(app, job["id"], final)
        response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_job_status"
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == final


class TestPauseResume:
    def test_pause_then_resume_requeues_the_job(
        self, client: TestClient, app, training_file: str, settings: Settings
    ) -> None:  # type: ignore[no-untyped-def]
        job = create(client, training_file).json()
        set_status(app, job["id"], "running")
        paused = client.post(f"/v1/fine_tuning/jobs/{job['id']}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        resumed = client.post(f"/v1/fine_tuning/jobs/{job['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
        assert queued_job_ids(settings, TRAINING_QUEUE) == [job["id"]]
        assert "Fine-tuning job resumed" in events(client, job["id"])

    @pytest.mark.parametrize(("action", "status"), [("pause", "validating_files"), ("resume", "running")])
    def test_control_in_the_wrong_state_is_400(
        self, client: TestClient, app, training_file: str, action: str, status: str
    ) -> None:  # type: ignore[no-untyped-def]
        job = create(client, training_file).json()
        if status != "validating_files":
            set_status(app, job["id"], status)
        response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/{action}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_job_status"
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == status


class TestIdempotencyKey:
    def test_a_retried_create_returns_the_same_job(
        self, client: TestClient, training_file: str, settings: Settings
    ) -> None:
        headers = {"Idempotency-Key": "retry-me-1"}
        first = client.post(
            "/v1/fine_tuning/jobs",
            json={"model": "tiny-llama", "training_file": training_file},
            headers=headers,
        )
        second = client.post(
            "/v1/fine_tuning/jobs",
            json={"model": "tiny-llama", "training_file": training_file},
            headers=headers,
        )
        assert first.status_code == second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        other = client.post(
            "/v1/fine_tuning/jobs",
            json={"model": "tiny-llama", "training_file": training_file},
            headers={"Idempotency-Key": "another"},
        )
        assert other.json()["id"] != first.json()["id"]
        assert len(client.get("/v1/fine_tuning/jobs").json()["data"]) == 2
        assert sorted(queued_job_ids(settings)) == sorted([first.json()["id"], other.json()["id"]])


class TestListFilters:
    def test_metadata_filters_and_pages(self, client: TestClient, training_file: str) -> None:
        ids = {}
        for i in range(5):
            team = "red" if i % 2 == 0 else "blue"
            job = create(client, training_file, metadata={"team": team, "n": str(i)}).json()
            ids.setdefault(team, []).append(job["id"])
        red = client.get("/v1/fine_tuning/jobs", params={"metadata[team]": "red", "limit": 2}).json()
        assert [j["id"] for j in red["data"]] == ids["red"][::-1][:2] and red["has_more"] is True
        rest = client.get(
            "/v1/fine_tuning/jobs", params={"metadata[team]": "red", "after": red["last_id"]}
        ).json()
        assert [j["id"] for j in rest["data"]] == ids["red"][::-1][2:] and rest["has_more"] is False
        both = client.get(
            "/v1/fine_tuning/jobs", params={"metadata[team]": "blue", "metadata[n]": "3"}
        ).json()
        assert [j["id"] for j in both["data"]] == [ids["blue"][1]]
        assert client.get("/v1/fine_tuning/jobs", params={"metadata[team]": "green"}).json()["data"] == []
        bad = client.get("/v1/fine_tuning/jobs", params={"metadata": "team"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata"
