"""An in-process API client over the real database and broker of the test's backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.service import create_key
from api.config import Settings
from api.db import session_scope
from api.models.store import ModelStore
from tests.support.tiny_model import build_tiny_chat_model, toy_chat_examples, write_jsonl

TINY_MODEL = "tiny-llama"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def app(settings: Settings, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def api_key(app) -> str:  # type: ignore[no-untyped-def]
    with session_scope(app.state.sessionmaker) as session:
        return create_key(session)


@pytest.fixture
def client(app, api_key: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as test_client:
        yield test_client


@pytest.fixture
def training_file(client: TestClient, tmp_path: Path) -> str:
    path = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(16))
    with path.open("rb") as stream:
        response = client.post("/v1/files", files={"file": ("train.jsonl", stream)}, data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return response.json()["id"]
