"""The API's inference routes before they reach a backend: which models answer for whom, and what is
refused. No backend runs here (TUNERY_INFERENCE_URL points at a closed port): a model that passes the
API's rules gets 503 inference_unavailable, one that doesn't gets its 4xx first."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.fine_tuning import artifacts
from tests.api.test_checkpoints_and_models import _upload
from tests.api.test_jobs import create
from tests.conftest import TINY_MODEL
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.services import free_port

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"inference_url": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture
def tuned(client: TestClient, app, training_file: str) -> dict:  # type: ignore[no-untyped-def]
    job = create(client, training_file, suffix="demo").json()
    succeed_with_checkpoints(app, job["id"], steps=(4,))
    artifacts.checkpoint_dir(app.state.settings, job["id"], 4).mkdir(parents=True, exist_ok=True)
    return client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()


def chat(client: TestClient, model: str, **fields: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, **fields})


class TestWhoseModels:
    def test_base_fine_tuned_and_checkpoint_models_reach_the_backend(
        self, client: TestClient, tuned: dict
    ) -> None:
        for model in (TINY_MODEL, tuned["fine_tuned_model"], f"{tuned['fine_tuned_model']}:ckpt-step-4"):
            response = chat(client, model)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "inference_unavailable"

    def test_another_projects_model_is_not_found(self, other_client: TestClient, tuned: dict) -> None:
        for model in (tuned["fine_tuned_model"], f"{tuned['fine_tuned_model']}:ckpt-step-4"):
            response = chat(other_client, model)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "model_not_found"

    def test_a_shared_checkpoint_answers_the_project_it_was_shared_with(
        self, client: TestClient, other_client: TestClient, tuned: dict
    ) -> None:
        name = f"{tuned['fine_tuned_model']}:ckpt-step-4"
        project_id = create(other_client, _upload(other_client)).json()["organization_id"]
        shared = client.post(
            f"/v1/fine_tuning/checkpoints/{name}/permissions", json={"project_ids": [project_id]}
        )
        assert shared.status_code == 200, shared.text
        assert chat(other_client, name).status_code == 503  # past the rules, on to the (absent) backend
        assert chat(other_client, tuned["fine_tuned_model"]).status_code == 404

    def test_a_deleted_model_is_not_found(self, client: TestClient, tuned: dict) -> None:
        assert client.delete(f"/v1/models/{tuned['fine_tuned_model']}").status_code == 200
        response = chat(client, tuned["fine_tuned_model"])
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


class TestRefusals:
    def test_an_unsupported_field_is_a_400_naming_it(self, client: TestClient) -> None:
        for field, value in (("presence_penalty", 1.0), ("logit_bias", {"1": 2}), ("modalities", ["text"])):
            response = chat(client, TINY_MODEL, **{field: value})
            assert response.status_code == 400
            assert response.json()["error"]["param"] == field

    def test_json_response_formats_are_refused(self, client: TestClient) -> None:
        response = chat(client, TINY_MODEL, response_format={"type": "json_object"})
        assert response.status_code == 400
        assert response.json()["error"]["param"].startswith("response_format")

    def test_unknown_models_are_not_found(self, client: TestClient) -> None:
        response = client.post("/v1/completions", json={"model": "nope", "prompt": "hi"})
        assert response.status_code == 404 and response.json()["error"]["param"] == "model"

    def test_a_chat_model_is_no_classifier(self, client: TestClient) -> None:
        response = client.post("/v1/classifications", json={"model": TINY_MODEL, "input": "lime"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "model_not_supported"

    def test_a_key_is_needed(self, app) -> None:  # type: ignore[no-untyped-def]
        with TestClient(app) as anonymous:
            assert chat(anonymous, TINY_MODEL).status_code == 401
