"""Shared fixtures: real PostgreSQL and Redis, fresh migrated databases, and the two backends.

Every test that takes `settings` runs twice: on the embedded default (SQLite + filesystem broker)
and on PostgreSQL + Redis, each test with its own database, data directory and Redis database.
"""

from __future__ import annotations

import os
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.config import Settings
from api.migrations import upgrade
from tests.support import services

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
    import psycopg

    name = f"tunery_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(postgres_admin_url)._replace(path=f"/{name}").geturl()
    upgrade(Settings(database_url=url))
    from sqlalchemy import create_engine

    create_engine(Settings(database_url=url).sqlalchemy_url).dispose()
    yield name
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("sqlite-template")
    upgrade(Settings(data_dir=data_dir))
    return data_dir / "tunery.db"


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    import psycopg

    name = f"tunery_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield urlsplit(postgres_admin_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of its own (1-15), emptied before and after the test."""
    import redis

    url = urlsplit(redis_server_url)._replace(path=f"/{random.randint(1, 15)}").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Migrated settings for one test, on the backend of the test's parameter."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if backend == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), data_dir / "tunery.db")
        return Settings(data_dir=data_dir, database_url=None, broker_url=None, api_key=None)
    return Settings(
        data_dir=data_dir,
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
        api_key=None,
    )
