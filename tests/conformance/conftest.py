"""One live Tunery (API + worker processes on Postgres and Redis) for the whole conformance suite,
and the two kinds of official `openai` client every test runs with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from openai import OpenAI

from api.auth.service import create_key
from api.config import Settings
from api.db import make_engine, make_sessionmaker, session_scope
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support import redis_databases
from tests.support.processes import LiveService, live_service
from tests.support.services import fresh_database

# Small enough to test 413 with a few megabytes; large enough for every dataset here.
UPLOAD_LIMIT = 2 * 1024 * 1024
ORG_MODEL = "acme/tiny-llama"  # an id with '/', which the SDK sends as %2F


@pytest.fixture(scope="package")
def live(
    postgres_admin_url: str,
    postgres_template: str,
    redis_server_url: str,
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveService]:
    redis_url = urlsplit(redis_server_url)._replace(path=f"/{redis_databases.for_package()}").geturl()
    data_dir = tmp_path_factory.mktemp("conformance")
    extra = {
        "TUNERY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "TUNERY_HEARTBEAT_SECONDS": "0.5",
        "TUNERY_RECONCILE_SECONDS": "5",
    }
    database = fresh_database(postgres_admin_url, prefix="tunery_conformance", template=postgres_template)
    with database as database_url:
        settings = Settings(data_dir=data_dir, database_url=database_url, broker_url=redis_url)
        store = ModelStore(settings.models_path)
        store.import_directory(tiny_model_dir, TINY_MODEL)
        store.import_directory(tiny_model_dir, ORG_MODEL)
        with live_service(settings, data_dir / "logs", extra_env=extra) as service:
            yield service


@pytest.fixture(scope="package")
def other_project_key(live: LiveService) -> str:
    engine = make_engine(live.settings)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return create_key(session, "conformance-other")
    finally:
        engine.dispose()


@pytest.fixture(params=["default", "strict"])
def client(request: pytest.FixtureRequest, live: LiveService) -> Iterator[OpenAI]:
    """The SDK as users build it, and as strict users build it (every response validated)."""
    strict = request.param == "strict"
    with OpenAI(base_url=live.base_url, api_key=live.api_key, _strict_response_validation=strict) as sdk:
        yield sdk


def is_strict(client: OpenAI) -> bool:
    return bool(client._strict_response_validation)
