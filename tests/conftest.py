"""Shared fixtures: real PostgreSQL and Redis, fresh migrated databases, the two backends, and an
in-process API client over them.

Every test that takes `settings` runs twice: on the embedded default (SQLite + filesystem broker)
and on PostgreSQL + Redis, each test with its own database, data directory and Redis database.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth.service import create_key
from api.config import Settings
from api.db import session_scope
from api.migrations import upgrade
from api.models.store import ModelStore
from tests.support import redis_databases, services
from tests.support.storage import s3_endpoint, storage_settings  # noqa: F401 (a fixture)
from tests.support.tiny_model import build_tiny_chat_model, toy_chat_examples, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    try:
        with services.postgres_server() as url:
            yield url
    except services.ServiceUnavailable as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    try:
        with services.redis_server() as url:
            yield url
    except services.ServiceUnavailable as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE) in milliseconds."""
    with services.fresh_database(postgres_admin_url, prefix="tunery_template") as url:
        upgrade(Settings(database_url=url))
        yield urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sqlite-template")
    upgrade(Settings(data_dir=data_dir))
    return data_dir / "tunery.db"


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    with services.fresh_database(postgres_admin_url, template=postgres_template) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of its own, emptied before and after the test. Under pytest-xdist each worker
    process draws from its own share of databases 1-15, so two tests at once never share one."""
    import redis

    url = urlsplit(redis_server_url)._replace(path=f"/{redis_databases.for_test()}").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


# `make test` runs every backend; the inner loop (`make test-fast`) sets TUNERY_TEST_BACKENDS=sqlite.
BACKENDS = [name for name in os.environ.get("TUNERY_TEST_BACKENDS", "sqlite,postgres").split(",") if name]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage() -> str:
    """The storage backend (tests/support/storage.py): `local` unless TUNERY_TEST_STORAGE says `s3`."""
    return os.environ.get("TUNERY_TEST_STORAGE", "local")


@pytest.fixture
def settings(backend: str, storage: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Migrated settings for one test, on the backend (and storage backend) of the test's parameters."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stored = storage_settings(storage, request)
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), data_dir / "tunery.db")
        return Settings(data_dir=data_dir, database_url=None, broker_url=None, api_key=None, **stored)
    return Settings(
        data_dir=data_dir,
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
        api_key=None,
        **stored,
    )


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
def api_key_for(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """An app built from other settings (limits fixed at start-up), with a key for it."""
    made = []

    def build(custom: Settings):  # type: ignore[no-untyped-def]
        application = create_app(custom)
        made.append(application)
        with session_scope(application.state.sessionmaker) as session:
            return application, create_key(session)

    yield build
    for application in made:
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
def other_client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client with a key of another project, for what one project must not see of another's."""
    with session_scope(app.state.sessionmaker) as session:
        key = create_key(session, "other-team")
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def training_file(client: TestClient, tmp_path: Path) -> str:
    path = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(16))
    with path.open("rb") as stream:
        response = client.post(
            "/v1/files", files={"file": ("train.jsonl", stream)}, data={"purpose": "fine-tune"}
        )
    assert response.status_code == 200, response.text
    return response.json()["id"]
