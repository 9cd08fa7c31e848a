"""A request takes few threadpool steps, and a create's write transaction ends in the step that
began it, the endpoint's (api/one_hop.py): under load every step waits for a thread and for the
event loop, and on SQLite a write lock held across such a wait holds up every writer of every
process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TINY_MODEL

# The caller's key (a short read of its own, or the GET's session), then the endpoint with its commit.
MOST_STEPS = 2


@contextmanager
def threadpool_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the functions each threadpool step ran, in order."""
    steps: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", "?")
        if name != "hit":  # the per-key rate limit's counter (a Redis call), when limits are on
            steps.append(name)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    yield steps
    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)


def test_create_list_and_retrieve_each_take_at_most_two_steps(
    client: TestClient, training_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"model": TINY_MODEL, "training_file": training_file}
    client.post("/v1/fine_tuning/jobs", json=body)  # warm: the first request of a process sets things up
    with threadpool_steps(monkeypatch) as steps:
        created = client.post("/v1/fine_tuning/jobs", json=body)
    assert created.status_code == 200, created.text
    assert len(steps) <= MOST_STEPS, steps
    assert "end_session" not in steps, steps  # the commit ran in the endpoint's own step
    for path in ("/v1/fine_tuning/jobs", f"/v1/fine_tuning/jobs/{created.json()['id']}"):
        with threadpool_steps(monkeypatch) as steps:
            response = client.get(path)
        assert response.status_code == 200, response.text
        assert len(steps) <= MOST_STEPS, (path, steps)
        assert "end_session" not in steps, steps
