"""Checkpoints, checkpoint models shared between projects, and deleting fine-tuned models."""

from __future__ import annotations

import io
import tarfile
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api.test_jobs import create
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.storage import both_storages as storage  # noqa: F401 (both backends)
from tests.support.storage import stored_objects
from tests.support.tiny_model import jsonl, toy_chat_examples

pytestmark = pytest.mark.integration


@pytest.fixture
def finished_job(client: TestClient, app, training_file: str) -> dict:  # type: ignore[no-untyped-def]
    job = create(client, training_file, suffix="demo").json()
    succeed_with_checkpoints(app, job["id"], steps=(4, 8, 12))
    return client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()


class TestCheckpoints:
    def test_listed_newest_first_with_openai_names(self, client: TestClient, finished_job: dict) -> None:
        url = f"/v1/fine_tuning/jobs/{finished_job['id']}/checkpoints"
        page = client.get(url, params={"limit": 2}).json()
        assert [c["step_number"] for c in page["data"]] == [12, 8] and page["has_more"] is True
        rest = client.get(url, params={"after": page["last_id"]}).json()
        assert [c["step_number"] for c in rest["data"]] == [4] and rest["has_more"] is False
        first = page["data"][0]
        assert first["object"] == "fine_tuning.job.checkpoint"
        assert first["fine_tuning_job_id"] == finished_job["id"]
        assert first["fine_tuned_model_checkpoint"] == f"{finished_job['fine_tuned_model']}:ckpt-step-12"
        assert first["metrics"]["step"] == 12 and first["metrics"]["train_loss"] == 1.5
        assert first["id"].startswith("ftckpt_")

    def test_metrics_without_a_value_are_left_out_not_null(
        self, client: TestClient, finished_job: dict
    ) -> None:
        # OpenAI's spec has every metric optional: a job without a validation file has no valid_* keys.
        url = f"/v1/fine_tuning/jobs/{finished_job['id']}/checkpoints"
        metrics = client.get(url).json()["data"][0]["metrics"]
        assert set(metrics) == {"step", "train_loss", "train_mean_token_accuracy"}

    def test_checkpoint_models_are_models(self, client: TestClient, finished_job: dict) -> None:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        name = f"{finished_job['fine_tuned_model']}:ckpt-step-8"
        assert finished_job["fine_tuned_model"] in ids and name in ids
        model = client.get(f"/v1/models/{quote(name, safe=':')}").json()
        assert model["id"] == name and model["owned_by"] == finished_job["organization_id"]
        adapter = client.get(f"/v1/fine_tuning/checkpoints/{name}/adapter")
        assert adapter.status_code == 200 and unpacked(adapter.content) == {
            "adapter/adapter_config.json": b"artifact of step-8"
        }


class TestPermissions:
    def test_share_list_and_revoke(
        self, client: TestClient, other_client: TestClient, finished_job: dict, training_file: str
    ) -> None:
        name = f"{finished_job['fine_tuned_model']}:ckpt-step-4"
        other_project = create(other_client, _upload(other_client)).json()["organization_id"]
        assert other_client.get(f"/v1/models/{name}").status_code == 404
        assert other_client.get(f"/v1/fine_tuning/checkpoints/{name}/adapter").status_code == 404

        granted = client.post(
            f"/v1/fine_tuning/checkpoints/{name}/permissions", json={"project_ids": [other_project]}
        )
        assert granted.status_code == 200, granted.text
        permission = granted.json()["data"][0]
        assert permission["object"] == "checkpoint.permission" and permission["project_id"] == other_project
        again = client.post(
            f"/v1/fine_tuning/checkpoints/{name}/permissions", json={"project_ids": [other_project]}
        )
        assert again.json()["data"][0]["id"] == permission["id"]  # granting twice grants once

        assert other_client.get(f"/v1/models/{name}").json()["id"] == name
        assert name in [m["id"] for m in other_client.get("/v1/models").json()["data"]]
        assert other_client.get(f"/v1/fine_tuning/checkpoints/{name}/adapter").status_code == 200
        # Shared means usable, not manageable, and the rest of the job stays private.
        assert other_client.get(f"/v1/fine_tuning/checkpoints/{name}/permissions").status_code == 404
        assert other_client.get(f"/v1/fine_tuning/jobs/{finished_job['id']}").status_code == 404
        not_shared = f"{finished_job['fine_tuned_model']}:ckpt-step-8"
        assert other_client.get(f"/v1/models/{not_shared}").status_code == 404

        listed = client.get(f"/v1/fine_tuning/checkpoints/{name}/permissions").json()
        assert [p["id"] for p in listed["data"]] == [permission["id"]]
        filtered = client.get(
            f"/v1/fine_tuning/checkpoints/{name}/permissions", params={"project_id": "proj_nope"}
        )
        assert filtered.json()["data"] == []

        deleted = client.delete(f"/v1/fine_tuning/checkpoints/{name}/permissions/{permission['id']}")
        assert deleted.json() == {"id": permission["id"], "object": "checkpoint.permission", "deleted": True}
        assert other_client.get(f"/v1/models/{name}").status_code == 404
        assert (
            client.delete(f"/v1/fine_tuning/checkpoints/{name}/permissions/{permission['id']}").status_code
            == 404
        )

    @pytest.mark.parametrize(("project_ids", "message"), [(["proj_nope"], "No project"), ([], None)])
    def test_bad_grants_are_400(
        self, client: TestClient, finished_job: dict, project_ids: list, message: str | None
    ) -> None:
        name = f"{finished_job['fine_tuned_model']}:ckpt-step-4"
        response = client.post(
            f"/v1/fine_tuning/checkpoints/{name}/permissions", json={"project_ids": project_ids}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "project_ids"
        if message:
            assert message in response.json()["error"]["message"]

    def test_granting_to_the_owner_is_400(self, client: TestClient, finished_job: dict) -> None:
        name = f"{finished_job['fine_tuned_model']}:ckpt-step-4"
        response = client.post(
            f"/v1/fine_tuning/checkpoints/{name}/permissions",
            json={"project_ids": [finished_job["organization_id"]]},
        )
        assert response.status_code == 400 and "owns this checkpoint" in response.json()["error"]["message"]


class TestDeleteModel:
    def test_deleting_a_fine_tuned_model_removes_it_and_keeps_the_job(
        self, client: TestClient, app, finished_job: dict
    ) -> None:  # type: ignore[no-untyped-def]
        model = finished_job["fine_tuned_model"]
        assert client.get(f"/v1/fine_tuning/jobs/{finished_job['id']}/adapter").status_code == 200
        response = client.delete(f"/v1/models/{model}")
        assert response.json() == {"id": model, "object": "model", "deleted": True}
        assert client.get(f"/v1/models/{model}").status_code == 404
        assert model not in [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert client.get(f"/v1/fine_tuning/jobs/{finished_job['id']}/adapter").status_code == 404
        job = client.get(f"/v1/fine_tuning/jobs/{finished_job['id']}").json()
        assert job["status"] == "succeeded" and job["fine_tuned_model"] == model
        settings = app.state.settings
        assert not (settings.artifacts_path / finished_job["id"] / "adapter").exists()
        assert stored_objects(settings, f"artifacts/{finished_job['id']}/adapter") == []
        assert client.delete(f"/v1/models/{model}").status_code == 404

    def test_base_and_checkpoint_models_cannot_be_deleted(
        self, client: TestClient, finished_job: dict
    ) -> None:
        for model in ("tiny-llama", f"{finished_job['fine_tuned_model']}:ckpt-step-4"):
            response = client.delete(f"/v1/models/{model}")
            assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_deletable"
        assert client.get("/v1/models/tiny-llama").status_code == 200


def unpacked(archive: bytes) -> dict[str, bytes]:
    """The files of a downloaded tar, by member name."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _upload(client: TestClient) -> str:
    body = jsonl(toy_chat_examples(10))
    response = client.post("/v1/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"})
    return response.json()["id"]
