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

# The caller's key (a short read of its own, or the GET's session), the endpoint and its commit: one.
MOST_STEPS = 1


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


def test_create_list_and_retrieve_each_take_one_step(
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


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/fine_tuning/jobs", {"model": 7}),  # a bad body
        ("get", "/v1/fine_tuning/jobs?limit=0", None),  # a bad query parameter
    ],
)
def test_a_bad_key_is_401_before_a_bad_parameter_is_400(
    app: Any, client: TestClient, method: str, path: str, body: dict | None
) -> None:
    """The key is looked up in the endpoint's step, which a request that fails validation never
    reaches: the key is still checked first, and a good one gets the 400 naming the parameter."""
    with TestClient(app, headers={"Authorization": "Bearer sk-not-a-key"}) as stranger:
        refused = getattr(stranger, method)(path, **({"json": body} if body is not None else {}))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["message"] == "Incorrect API key provided."
    with TestClient(app) as anonymous:
        assert getattr(anonymous, method)(path, **({"json": body} if body else {})).status_code == 401
    invalid = getattr(client, method)(path, **({"json": body} if body is not None else {}))
    assert invalid.status_code == 400, invalid.text
    assert invalid.json()["error"]["param"] in ("model", "limit"), invalid.text
