"""The embedded backend with TUNERY_STORAGE_URL=s3://...: the API names a fine-tuned model by its key
in the bucket, and the backend, on a machine of its own, fetches it into its own data directory once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.fine_tuning import artifacts
from api.models.store import ModelStore
from api.storage import store_of
from api.storage.directories import put_directory
from tests.conftest import TINY_MODEL
from tests.inference.conftest import random_lora_artifact
from tests.support.storage import new_bucket
from worker.inference.server import create_inference_app

QUESTION = [{"role": "user", "content": "What colour is a lime?"}]


@pytest.fixture
def bucket_settings(s3_endpoint: str, tmp_path: Path, tiny_model_dir: Path) -> Settings:
    bucket = f"s3://{new_bucket(s3_endpoint)}/tunery"
    settings = Settings(
        data_dir=tmp_path / "inference",
        storage_url=bucket,
        s3_endpoint_url=s3_endpoint,
        inference_max_queue=0,
    )
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    return settings


@pytest.fixture
def server(bucket_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_inference_app(bucket_settings)) as client:
        yield client


def answer(server: TestClient, artifact_dir: str | None) -> str:
    target = {"base_model": TINY_MODEL, "artifact_dir": artifact_dir}
    body = {"model": "ft:x", "messages": QUESTION, "temperature": 0, "max_tokens": 10, "target": target}
    response = server.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_model_named_by_its_key_is_fetched_from_the_bucket_once(
    server: TestClient, bucket_settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The worker's machine: its own data directory, whose artifact goes up to the bucket.
    worker = bucket_settings.model_copy(update={"data_dir": tmp_path / "worker"})
    trained = random_lora_artifact(worker, tiny_model_dir, "ftjob-bucket", seed=3)
    key = artifacts.key_of(worker, trained)
    assert key == "artifacts/ftjob-bucket/adapter"
    put_directory(store_of(bucket_settings), key, trained)
    assert artifacts.served_as(bucket_settings, artifacts.adapter_dir(bucket_settings, "ftjob-bucket")) == key

    base, tuned = answer(server, None), answer(server, key)
    assert tuned != base
    fetched = bucket_settings.artifacts_path / "ftjob-bucket" / "adapter"
    assert (fetched / "tunery.json").is_file()  # in the backend's own data directory
    assert answer(server, key) == tuned
    assert server.post("/v1/unload_model", json={"artifact_dir": key}).json()["unloaded"] is True


def test_a_key_with_nothing_in_the_bucket_is_not_found(server: TestClient) -> None:
    target = {"base_model": TINY_MODEL, "artifact_dir": "artifacts/ftjob-none/adapter"}
    response = server.post(
        "/v1/chat/completions", json={"model": "ft:x", "messages": QUESTION, "target": target}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
