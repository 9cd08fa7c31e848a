"""A client that gives up on a whole (non-streamed) answer makes the API let go of the backend's
request, so the backend can stop generating. The backend here never answers on its own: it waits
until its client (the API) goes, so the test sees for certain whether the API cancelled, with no race
against a generation that finishes first."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from api.config import Settings
from tests.conftest import TINY_MODEL
from tests.support.services import free_port
from tests.support.threaded_server import serve_in_thread
from tests.support.vllm_stand_in import VllmStandIn, vllm_stand_in

pytestmark = pytest.mark.integration
BODY = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def vllm() -> Iterator[VllmStandIn]:
    with vllm_stand_in() as stand_in:
        stand_in.hold = True
        yield stand_in


@pytest.fixture
def settings(settings: Settings, vllm: VllmStandIn) -> Settings:
    return settings.model_copy(
        update={
            "inference_url": f"http://127.0.0.1:{free_port()}",
            "inference_backends": {TINY_MODEL: f"vllm:{vllm.url}"},
        }
    )


@pytest.fixture
def api_url(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serve_in_thread(app) as url:
        yield url


def routes(vllm: VllmStandIn) -> list[str]:
    return [route for route, _ in vllm.calls]


def test_the_backends_request_lives_as_long_as_its_client(
    vllm: VllmStandIn, api_url: str, api_key: str
) -> None:
    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as client:
            asking = asyncio.create_task(client.post("/v1/chat/completions", json=BODY))
            await asyncio.sleep(1.5)  # six of the API's disconnect polls
            assert routes(vllm) == ["chat"], "while its client waits, the API keeps the backend's request"
            asking.cancel()  # the client gives up: its connection closes
            with contextlib.suppress(asyncio.CancelledError):
                await asking
        deadline = time.monotonic() + 5
        while "abandoned" not in routes(vllm):
            assert time.monotonic() < deadline, "the API kept the backend's request after its client left"
            await asyncio.sleep(0.02)

    asyncio.run(scenario())
