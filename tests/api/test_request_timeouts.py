"""No request waits on the database longer than TUNERY_DB_TIMEOUT_SECONDS without an answer.

Another writer holds the database (SQLite's write lock; on Postgres an exclusive lock on the jobs
table) while a burst larger than the API's one database slot arrives: the request inside waits for the
lock, the others for the slot, and every one is answered, 503 with Retry-After, within its bound.
Once the lock goes, requests succeed and the refused creates left no job behind.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.tiny_model import jsonl, toy_chat_examples

pytestmark = [pytest.mark.integration, pytest.mark.alone]

TIMEOUT = 1.0


@contextmanager
def database_held(settings: Settings) -> Iterator[None]:
    """Another process's transaction that blocks the API's job writes (and on Postgres its reads)."""
    if settings.database_url is None:
        other = sqlite3.connect(settings.data_path / "tunery.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    with psycopg.connect(settings.database_url) as other:
        other.execute("LOCK TABLE fine_tuning_jobs IN ACCESS EXCLUSIVE MODE")
        yield
        other.rollback()


def test_requests_waiting_on_a_held_database_are_answered_503_in_time(
    settings: Settings, api_key_for, tiny_model_dir
) -> None:  # type: ignore[no-untyped-def]
    one_slot = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_timeout_seconds": TIMEOUT}
    )
    app, key = api_key_for(one_slot)
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, headers=headers) as client:
        training = client.post(
            "/v1/files",
            files={"file": ("t.jsonl", jsonl(toy_chat_examples(10)))},
            data={"purpose": "fine-tune"},
        ).json()["id"]
    body = {"model": TINY_MODEL, "training_file": training}

    async def burst() -> list[tuple[int, float, httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:

            async def timed(request) -> tuple[int, float, httpx.Response]:  # type: ignore[no-untyped-def]
                started = time.monotonic()
                answer = await request
                return answer.status_code, time.monotonic() - started, answer

            calls = [http.post("/v1/fine_tuning/jobs", json=body) for _ in range(4)]
            calls += [http.get("/v1/fine_tuning/jobs") for _ in range(2)] if settings.database_url else []
            # Far longer than any bound: a request that hangs fails the test here, not the suite.
            return await asyncio.wait_for(asyncio.gather(*(timed(call) for call in calls)), timeout=30)

    with database_held(settings):
        answers = asyncio.run(burst())

    statuses = [status for status, _, _ in answers]
    assert set(statuses) == {503}, statuses
    for _, seconds, answer in answers:
        # At most one wait for the slot and one for the lock, each bounded by the timeout.
        assert seconds < 2 * TIMEOUT + 1.5, (seconds, answer.text)
        assert int(answer.headers["Retry-After"]) >= 1
        error = answer.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "server_busy"
        assert "busy" in error["message"]

    with TestClient(app, headers=headers) as client:
        assert client.get("/v1/fine_tuning/jobs").json()["data"] == []  # no refused create left a job
        # The SDK retries a 503 by itself; with retries off it raises, and a free database answers.
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)
        made = sdk.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training)
        assert [job.id for job in sdk.fine_tuning.jobs.list()] == [made.id]


def test_a_slot_wait_past_the_timeout_is_503_on_its_own(settings: Settings, api_key_for) -> None:  # type: ignore[no-untyped-def]
    """The slot itself, apart from any database wait: all slots taken, a request is refused in time."""
    app, key = api_key_for(
        settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0, "db_timeout_seconds": 0.5})
    )

    async def with_every_slot_taken() -> tuple[int, float, int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
            async with app.state.database_slots:  # what a request stuck in the database would hold
                started = time.monotonic()
                refused = await asyncio.wait_for(http.get("/v1/fine_tuning/jobs"), timeout=10)
                waited = time.monotonic() - started
            served = await http.get("/v1/fine_tuning/jobs")
        return refused.status_code, waited, served.status_code

    status, waited, after = asyncio.run(with_every_slot_taken())
    assert status == 503
    assert 0.4 < waited < 2.0
    assert after == 200
