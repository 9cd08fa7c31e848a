"""The embedded backend drops a deleted fine-tuned model when the API asks (/v1/unload_model)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.config import Settings
from tests.conftest import TINY_MODEL
from tests.inference.conftest import random_lora_artifact

QUESTION = [{"role": "user", "content": "What colour is a lime?"}]


def test_an_unloaded_adapter_leaves_the_pool_and_loads_again_only_when_asked_for(
    server: TestClient, backend_settings: Settings, tiny_model_dir: Path
) -> None:
    artifact = random_lora_artifact(backend_settings, tiny_model_dir, "ftjob-unload", seed=7)
    target = {"base_model": TINY_MODEL, "artifact_dir": str(artifact)}
    body = {"model": "ft:unload", "messages": QUESTION, "max_tokens": 4, "temperature": 0, "target": target}
    assert server.post("/v1/chat/completions", json=body).status_code == 200
    assert server.get("/health").json()["loaded"] == [str(artifact.resolve())]

    answer = server.post("/v1/unload_model", json={"artifact_dir": str(artifact)})
    assert answer.status_code == 200 and answer.json()["unloaded"] is True
    assert server.get("/health").json()["loaded"] == []
    pool = server.app.state.engine.pool  # type: ignore[attr-defined]
    assert not hasattr(pool._bases[TINY_MODEL].model, "peft_config")  # back to the plain base model
    again = server.post("/v1/unload_model", json={"artifact_dir": str(artifact)})
    assert again.json()["unloaded"] is False
