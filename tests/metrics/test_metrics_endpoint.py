"""GET /metrics: Prometheus' text format, for the admin key or the scrape token, never anyone else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.auth.service import create_key
from api.config import Settings
from api.db import session_scope

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def admin_key(app) -> str:  # type: ignore[no-untyped-def]
    with session_scope(app.state.sessionmaker) as session:
        return create_key(session, is_admin=True)


def test_anonymous_and_member_keys_are_refused(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/metrics").status_code == 403
    with TestClient(app) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        assert (
            anonymous.get("/metrics", headers={"Authorization": "Bearer not-a-key-at-all"}).status_code == 401
        )


def test_the_scrape_token_reads_it(api_key_for, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    app, _ = api_key_for(settings.model_copy(update={"metrics_token": "scrape-token-0123456789"}))
    with TestClient(app) as scraper:
        answer = scraper.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert (
            scraper.get("/metrics", headers={"Authorization": "Bearer scrape-token-wrong"}).status_code == 401
        )


def test_jobs_queues_and_requests_are_counted(
    app,
    client: TestClient,
    admin_key: str,
    training_file: str,  # type: ignore[no-untyped-def]
) -> None:
    from tests.conftest import TINY_MODEL

    job = client.post("/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file})
    assert job.status_code == 200
    client.get(f"/v1/fine_tuning/jobs/{job.json()['id']}")
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        text = admin.get("/metrics").text
    got = samples(text)
    assert got["tunery_jobs", frozenset({("status", "validating_files")})] == 1
    assert got["tunery_jobs", frozenset({("status", "running")})] == 0
    assert got["tunery_queue_depth", frozenset({("queue", "tunery.validation")})] == 1
    assert got["tunery_queue_depth", frozenset({("queue", "tunery.training")})] == 0
    assert ("tunery_queue_oldest_wait_seconds", frozenset({("queue", "tunery.validation")})) in got
    route = frozenset({("route", "/v1/fine_tuning/jobs/{job_id}"), ("method", "GET"), ("status", "200")})
    assert got["tunery_http_request_duration_seconds_count", route] >= 1
