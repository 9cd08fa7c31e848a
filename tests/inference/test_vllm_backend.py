"""The API in front of a vLLM server (a stand-in that speaks vLLM's routes, on a real port): LoRA
fine-tunes registered on first use and forwarded under their name, registered again after vLLM forgets
them, and what vLLM can't serve kept on the embedded backend (here a closed port: 503)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.fine_tuning import artifacts
from tests.api.test_jobs import create
from tests.conftest import TINY_MODEL
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.services import free_port
from tests.support.vllm_stand_in import SERVED_MODEL, VllmStandIn, vllm_stand_in

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def vllm() -> Iterator[VllmStandIn]:
    with vllm_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def settings(settings: Settings, vllm: VllmStandIn) -> Settings:
    return settings.model_copy(
        update={
            "inference_url": f"http://127.0.0.1:{free_port()}",  # the embedded backend: nobody there
            "inference_backends": {TINY_MODEL: f"vllm:{vllm.url}"},
        }
    )


def fine_tune(  # type: ignore[no-untyped-def]
    client: TestClient, app, training_file: str, artifact_format: str, peft_type: str = "LORA"
) -> dict:
    """A succeeded job whose artifact is shaped as the trainer leaves it (the files routing reads)."""
    job = create(client, training_file, suffix="demo").json()
    succeed_with_checkpoints(app, job["id"], steps=(4,))
    directory = artifacts.adapter_dir(app.state.settings, job["id"])
    record = {"job_id": job["id"], "method": "supervised", "artifact_format": artifact_format}
    (directory / "tunery.json").write_text(json.dumps(record))
    if artifact_format == "peft":
        config = {"peft_type": peft_type, "task_type": "CAUSAL_LM", "r": 8, "use_dora": False}
        (directory / "adapter_config.json").write_text(json.dumps(config))
    return client.get(f"/v1/fine_tuning/jobs/{job['id']}").json() | {"artifact_dir": str(directory)}


@pytest.fixture
def lora(client: TestClient, app, training_file: str) -> dict:  # type: ignore[no-untyped-def]
    return fine_tune(client, app, training_file, "peft")


def chat(client: TestClient, model: str, **fields: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, **fields})


def said(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


class TestLoraAdapters:
    def test_the_first_request_registers_the_adapter_then_forwards_under_its_name(
        self, client: TestClient, vllm: VllmStandIn, lora: dict
    ) -> None:
        name = lora["fine_tuned_model"]
        assert said(chat(client, name)) == f"{name} says hi"
        assert vllm.loads() == [{"lora_name": name, "lora_path": lora["artifact_dir"]}]
        forwarded = [body for route, body in vllm.calls if route == "chat"]
        assert [body["model"] for body in forwarded] == [name]
        assert "target" not in forwarded[0]

    def test_a_second_request_does_not_register_again(
        self, client: TestClient, vllm: VllmStandIn, lora: dict
    ) -> None:
        name = lora["fine_tuned_model"]
        said(chat(client, name))
        completion = client.post("/v1/completions", json={"model": name, "prompt": "hi"})
        assert completion.status_code == 200, completion.text
        assert completion.json()["choices"][0]["text"] == f"{name} says hi"
        assert said(chat(client, name)) == f"{name} says hi"
        assert len(vllm.loads()) == 1

    def test_after_vllm_restarts_the_adapter_is_registered_again(
        self, client: TestClient, vllm: VllmStandIn, lora: dict
    ) -> None:
        name = lora["fine_tuned_model"]
        said(chat(client, name))
        vllm.restart()
        assert said(chat(client, name)) == f"{name} says hi"
        assert len(vllm.loads()) == 2
        assert [body["model"] for route, body in vllm.calls if route == "chat"] == [name, name, name]

    def test_streamed_answers_pass_through(self, client: TestClient, vllm: VllmStandIn, lora: dict) -> None:
        name = lora["fine_tuned_model"]
        body = {"model": name, "prompt": "hi", "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
        assert events[-1] == "[DONE]"
        assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == f"{name} says hi "


class TestWhatGoesWhere:
    def test_the_base_model_is_asked_for_under_vllms_served_name(
        self, client: TestClient, vllm: VllmStandIn
    ) -> None:
        assert said(chat(client, TINY_MODEL)) == f"{SERVED_MODEL} says hi"
        assert vllm.loads() == []

    def test_full_weight_fine_tunes_stay_on_the_embedded_backend(
        self,
        client: TestClient,
        app,
        training_file: str,
        vllm: VllmStandIn,  # type: ignore[no-untyped-def]
    ) -> None:
        full = fine_tune(client, app, training_file, "model")
        response = chat(client, full["fine_tuned_model"])
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "inference_unavailable"
        assert vllm.calls == []

    def test_adapters_vllm_cannot_load_stay_on_the_embedded_backend(
        self,
        client: TestClient,
        app,
        training_file: str,
        vllm: VllmStandIn,  # type: ignore[no-untyped-def]
    ) -> None:
        ia3 = fine_tune(client, app, training_file, "peft", peft_type="IA3")
        assert chat(client, ia3["fine_tuned_model"]).status_code == 503
        assert vllm.calls == []

    def test_a_vllm_that_refuses_the_adapter_is_a_502_that_says_why(
        self, client: TestClient, vllm: VllmStandIn, lora: dict
    ) -> None:
        vllm.refusal = "LoRA rank 64 is greater than max_lora_rank 16."
        response = chat(client, lora["fine_tuned_model"])
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "adapter_not_loaded"
        assert "max_lora_rank 16" in response.json()["error"]["message"]
        assert [route for route, _ in vllm.calls] == ["load"]


class TestDeletingTheModel:
    @pytest.fixture
    def settings(self, settings: Settings, vllm: VllmStandIn) -> Settings:
        return settings.model_copy(update={"inference_url": vllm.url})  # the stand-in records both

    def test_it_is_unloaded_from_every_backend_and_then_not_found(
        self, client: TestClient, vllm: VllmStandIn, lora: dict
    ) -> None:
        name = lora["fine_tuned_model"]
        said(chat(client, name))
        assert client.delete(f"/v1/models/{name}").json()["deleted"] is True
        assert vllm.unloads() == [{"lora_name": name}]
        assert [body for route, body in vllm.calls if route == "embedded-unload"] == [
            {"artifact_dir": lora["artifact_dir"]}
        ]
        assert name not in vllm.adapters
        response = chat(client, name)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"

    def test_backends_that_do_not_answer_do_not_stop_the_delete(
        self,
        client: TestClient,
        app,
        lora: dict,  # type: ignore[no-untyped-def]
    ) -> None:
        nobody = f"http://127.0.0.1:{free_port()}"
        app.state.settings = app.state.settings.model_copy(
            update={"inference_url": nobody, "inference_backends": {TINY_MODEL: f"vllm:{nobody}"}}
        )
        name = lora["fine_tuned_model"]
        assert client.delete(f"/v1/models/{name}").status_code == 200
        assert chat(client, name).status_code == 404
