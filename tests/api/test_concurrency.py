"""A burst of requests larger than the connection pool and the threadpool completes.

Each request holds its database connection across several threadpool steps. Before the database
slots (api/deps.py), a burst like this one filled every thread with requests waiting for a
connection while the requests holding the connections waited for a thread: nothing moved until
the pool's 30 s timeout turned them into 500s (found by bench/load.py at 60 clients).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.config import Settings

pytestmark = pytest.mark.integration


def test_a_burst_past_the_pool_and_the_threadpool_completes(settings: Settings, api_key_for) -> None:  # type: ignore[no-untyped-def]
    app, key = api_key_for(settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 0}))
    headers = {"Authorization": f"Bearer {key}"}

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            requests = [client.get("/v1/fine_tuning/jobs") for _ in range(120)]
            responses = await asyncio.wait_for(asyncio.gather(*requests), timeout=25)
        return [response.status_code for response in responses]

    assert asyncio.run(burst()) == [200] * 120
