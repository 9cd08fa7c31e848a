"""The settings of several API processes: how many there are, and a pool budget PostgreSQL can hold."""

from __future__ import annotations

import os

import pytest

from api.config import Settings
from api.db import connections_past_the_server_limit

pytestmark = pytest.mark.integration


def test_api_workers_default_to_the_cores_this_process_may_use() -> None:
    assert Settings(api_workers=None).api_worker_count == len(os.sched_getaffinity(0))
    assert Settings(api_workers=3).api_worker_count == 3
    with pytest.raises(ValueError):
        Settings(api_workers=0)


def test_a_pool_budget_past_max_connections_is_named(settings: Settings) -> None:
    assert connections_past_the_server_limit(settings.model_copy(update={"api_workers": 2})) is None
    too_many = settings.model_copy(update={"api_workers": 50, "db_pool_size": 100})
    warning = connections_past_the_server_limit(too_many)
    if settings.database_url is None:
        assert warning is None  # SQLite has no connection limit
    else:
        assert warning is not None and "50 API workers x 110 connections" in warning
        assert "max_connections" in warning


def test_an_empty_api_workers_variable_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNERY_API_WORKERS", "")  # what docker-compose.yml passes when it is unset
    assert Settings().api_worker_count == len(os.sched_getaffinity(0))
    monkeypatch.setenv("TUNERY_API_WORKERS", "2")
    assert Settings().api_worker_count == 2
