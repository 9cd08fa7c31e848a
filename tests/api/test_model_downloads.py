"""GET /v1/models/{model}/download and the model's `serving` extension: the routes, on artifacts whose
bytes are made up (tests/worker/test_model_export.py loads real ones)."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.fine_tuning import artifacts
from api.models import downloads
from tests.api.test_checkpoints_and_models import unpacked
from tests.api.test_jobs import create
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.storage import stored_objects, write_artifact_files

pytestmark = pytest.mark.integration

LORA = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"], "modules_to_save": None}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def model(client: TestClient, app, training_file: str) -> dict:  # type: ignore[no-untyped-def]
    job_id = create(client, training_file).json()["id"]
    succeed_with_checkpoints(app, job_id, steps=(4,))
    directory = artifacts.adapter_dir(app.state.settings, job_id)
    write_artifact_files(
        app.state.settings,
        directory,
        {"adapter_config.json": json.dumps(LORA).encode(), "adapter_model.safetensors": os.urandom(70_000)},
    )
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    return {"job_id": job_id, "name": job["fine_tuned_model"], "dir": directory}


def url(name: str, format: str = "adapter") -> str:
    return f"/v1/models/{quote(name, safe='')}/download?format={format}"


class TestAdapterDownload:
    def test_is_the_job_adapter_tar_with_length_and_a_stable_etag(
        self, client: TestClient, model: dict
    ) -> None:
        first, second = client.get(url(model["name"])), client.get(url(model["name"]))
        job_route = client.get(f"/v1/fine_tuning/jobs/{model['job_id']}/adapter")
        assert first.status_code == 200 and first.headers["content-type"] == "application/x-tar"
        assert first.content == second.content == job_route.content
        assert int(first.headers["content-length"]) == len(first.content)
        assert first.headers["etag"] == second.headers["etag"] == job_route.headers["etag"]
        assert not first.headers["etag"].startswith("W/")
        assert set(unpacked(first.content)) == {
            "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors",
        }

    def test_a_range_is_exactly_those_bytes_and_resumes_a_cut_download(
        self, client: TestClient, model: dict
    ) -> None:
        whole = client.get(url(model["name"])).content
        etag = client.get(url(model["name"])).headers["etag"]
        for start, end in [(0, 0), (100, 700), (1000, 50_000), (len(whole) - 10, len(whole) - 1)]:
            part = client.get(url(model["name"]), headers={"Range": f"bytes={start}-{end}", "If-Range": etag})
            assert part.status_code == 206
            assert part.content == whole[start : end + 1]
            assert part.headers["content-length"] == str(end - start + 1)
            assert part.headers["content-range"] == f"bytes {start}-{end}/{len(whole)}"
        cut = 12_345
        rest = client.get(url(model["name"]), headers={"Range": f"bytes={cut}-"})
        assert whole[:cut] + rest.content == whole
        assert client.get(url(model["name"]), headers={"Range": "bytes=-100"}).content == whole[-100:]

    def test_an_unsatisfiable_range_is_416_and_a_stale_if_range_gets_the_whole(
        self, client: TestClient, model: dict
    ) -> None:
        whole = client.get(url(model["name"])).content
        beyond = client.get(url(model["name"]), headers={"Range": f"bytes={len(whole)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(whole)}"
        stale = client.get(url(model["name"]), headers={"Range": "bytes=0-9", "If-Range": '"old"'})
        assert stale.status_code == 200 and stale.content == whole

    def test_if_none_match_with_the_etag_is_304(self, client: TestClient, model: dict) -> None:
        etag = client.get(url(model["name"])).headers["etag"]
        assert client.get(url(model["name"]), headers={"If-None-Match": etag}).status_code == 304

    def test_another_projects_model_is_404_until_a_checkpoint_is_shared(
        self, client: TestClient, other_client: TestClient, model: dict
    ) -> None:
        checkpoint = f"{model['name']}:ckpt-step-4"
        assert other_client.get(url(model["name"])).status_code == 404
        assert other_client.get(url(checkpoint)).status_code == 404
        other_project = other_client.get("/v1/models").json()  # makes no difference to the answer
        assert other_project["object"] == "list"
        project_id = _project_of(other_client)
        granted = client.post(
            f"/v1/fine_tuning/checkpoints/{checkpoint}/permissions", json={"project_ids": [project_id]}
        )
        assert granted.status_code == 200
        shared = other_client.get(url(checkpoint))
        assert shared.status_code == 200
        assert unpacked(shared.content) == {"adapter/adapter_config.json": b"artifact of step-4"}

    def test_a_deleted_model_is_404(self, client: TestClient, model: dict) -> None:
        assert client.delete(f"/v1/models/{quote(model['name'], safe='')}").status_code == 200
        assert client.get(url(model["name"])).status_code == 404

    def test_a_base_model_is_not_downloadable(self, client: TestClient) -> None:
        from tests.conftest import TINY_MODEL

        response = client.get(url(TINY_MODEL))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "model_not_downloadable"


class TestMergedDownload:
    def test_is_asked_for_once_with_202_and_served_once_ready(
        self, client: TestClient, app, model: dict
    ) -> None:  # type: ignore[no-untyped-def]
        sent: list[tuple] = []
        import api.queue

        original = api.queue.enqueue
        api.queue.enqueue = lambda settings, task, *args, **kw: sent.append((task, *args))  # type: ignore[assignment]
        try:
            first = client.get(url(model["name"], "merged"))
            again = client.get(url(model["name"], "merged"))
        finally:
            api.queue.enqueue = original  # type: ignore[assignment]
        assert first.status_code == again.status_code == 202
        assert first.headers["retry-after"] == "10" and first.json()["status"] == "preparing"
        assert sent == [(api.queue.EXPORT_MODEL, model["job_id"], None)]
        settings = app.state.settings
        ready = artifacts.merged_dir(settings, model["job_id"], None)
        write_artifact_files(settings, ready, {"model.safetensors": b"merged"})  # as the worker does
        if settings.storage_url:
            downloads.mark_ready(settings, ready)
        served = client.get(url(model["name"], "merged"))
        assert served.status_code == 200
        assert unpacked(served.content) == {"model/model.safetensors": b"merged"}
        client.delete(f"/v1/models/{quote(model['name'], safe='')}")
        assert not ready.exists()
        assert stored_objects(settings, f"artifacts/{model['job_id']}/merged/model") == []

    def test_an_export_that_failed_its_check_is_not_offered(
        self, client: TestClient, app, model: dict
    ) -> None:  # type: ignore[no-untyped-def]
        ready = artifacts.merged_dir(app.state.settings, model["job_id"], None)
        downloads.mark_failed(app.state.settings, ready, "logits differ by 3.0")
        response = client.get(url(model["name"], "merged"))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "merged_export_failed"
        assert "logits differ by 3.0" in response.json()["error"]["message"]


class TestServing:
    def test_a_plain_lora_on_llama_loads_in_vllm_as_it_is(self, client: TestClient, model: dict) -> None:
        serving = client.get(f"/v1/models/{quote(model['name'], safe='')}").json()["serving"]
        assert serving == {"vllm_lora": True, "format": "adapter"}  # reason: null is left out

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"modules_to_save": ["lm_head"]}, "lm_head"),
            ({"target_modules": ["q_proj", "embed_tokens"]}, "embed_tokens"),
            ({"r": 128}, "rank 128"),
            ({"use_dora": True}, "DoRA"),
            ({"peft_type": "IA3"}, "IA3"),
        ],
    )
    def test_an_adapter_vllm_does_not_load_says_why_and_points_to_merged(
        self, client: TestClient, app, model: dict, change: dict, why: str
    ) -> None:  # type: ignore[no-untyped-def]
        changed = json.dumps({**LORA, **change}).encode()
        write_artifact_files(app.state.settings, model["dir"], {"adapter_config.json": changed})
        serving = client.get(f"/v1/models/{quote(model['name'], safe='')}").json()["serving"]
        assert serving["vllm_lora"] is False and serving["format"] == "merged"
        assert why in serving["reason"] and "format=merged" in serving["reason"]

    def test_base_models_and_lists_carry_no_serving(self, client: TestClient, model: dict) -> None:
        assert all("serving" not in m for m in client.get("/v1/models").json()["data"])


def _project_of(client: TestClient) -> str:
    job = client.get("/v1/fine_tuning/jobs").json()["data"]
    if job:
        return job[0]["organization_id"]
    from tests.api.test_checkpoints_and_models import _upload

    return create(client, _upload(client)).json()["organization_id"]
