"""Per-key rate limits: the call past the limit is a 429 with Retry-After, counted per key, and
the official SDK raises its RateLimitError for it."""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient

from api.auth.service import create_key
from api.config import Settings
from api.db import session_scope
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = pytest.mark.integration


def test_job_creation_past_the_limit_is_429_per_key(
    settings: Settings, api_key_for, tiny_model_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    app, key = api_key_for(settings.model_copy(update={"rate_limit_jobs_per_minute": 2}))
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        path = write_jsonl(tmp_path / "t.jsonl", toy_chat_examples(10))
        training = client.post(
            "/v1/files", files={"file": ("t.jsonl", path.read_bytes())}, data={"purpose": "fine-tune"}
        ).json()["id"]
        body = {"model": TINY_MODEL, "training_file": training}
        assert [client.post("/v1/fine_tuning/jobs", json=body).status_code for _ in range(2)] == [200, 200]
        refused = client.post("/v1/fine_tuning/jobs", json=body)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert len(client.get("/v1/fine_tuning/jobs").json()["data"]) == 2  # nothing made
        assert client.get("/v1/fine_tuning/jobs").status_code == 200  # reads are not limited

    with session_scope(app.state.sessionmaker) as session:
        other_key = create_key(session)
    with TestClient(app, headers={"Authorization": f"Bearer {other_key}"}) as other:
        assert other.post("/v1/fine_tuning/jobs", json=body).status_code == 200  # a budget per key

        # What a user of the SDK sees (with retries off: the SDK would wait Retry-After and retry).
        sdk = openai.OpenAI(
            base_url="http://testserver/v1", api_key=other_key, http_client=other, max_retries=0
        )
        sdk.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training)
        with pytest.raises(openai.RateLimitError):
            sdk.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training)


def test_uploads_past_the_limit_are_429(settings: Settings, api_key_for, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app, key = api_key_for(settings.model_copy(update={"rate_limit_uploads_per_minute": 1}))
    body = write_jsonl(tmp_path / "t.jsonl", toy_chat_examples(10)).read_bytes()
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        first = client.post("/v1/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"})
        second = client.post("/v1/files", files={"file": ("t.jsonl", body)}, data={"purpose": "fine-tune"})
        assert (first.status_code, second.status_code) == (200, 429)
        assert "Retry-After" in second.headers
        assert [f["id"] for f in client.get("/v1/files").json()["data"]] == [first.json()["id"]]


def test_every_api_process_counts_the_same_requests(
    settings: Settings, api_key_for, tiny_model_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Two apps over one data directory and broker, as TUNERY_API_WORKERS processes are: the limit is
    the service's, not each process's (counted in Redis, or in the data directory's rate-limit file)."""
    limited = settings.model_copy(update={"rate_limit_jobs_per_minute": 2})
    first, key = api_key_for(limited)
    second, _ = api_key_for(limited)
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(first, headers=headers) as one, TestClient(second, headers=headers) as other:
        path = write_jsonl(tmp_path / "t.jsonl", toy_chat_examples(10))
        training = one.post(
            "/v1/files", files={"file": ("t.jsonl", path.read_bytes())}, data={"purpose": "fine-tune"}
        ).json()["id"]
        body = {"model": TINY_MODEL, "training_file": training}
        assert one.post("/v1/fine_tuning/jobs", json=body).status_code == 200
        assert other.post("/v1/fine_tuning/jobs", json=body).status_code == 200
        assert other.post("/v1/fine_tuning/jobs", json=body).status_code == 429
        assert one.post("/v1/fine_tuning/jobs", json=body).status_code == 429
