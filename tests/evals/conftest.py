"""Evals' fixtures: the official SDK over the in-process API, and evals of the documented graders."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fastapi.testclient import TestClient


def sdk_over(client: TestClient) -> openai.OpenAI:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


@pytest.fixture
def sdk(client: TestClient) -> Iterator[openai.OpenAI]:
    with sdk_over(client) as made:
        yield made


@pytest.fixture
def other_sdk(other_client: TestClient) -> Iterator[openai.OpenAI]:
    with sdk_over(other_client) as made:
        yield made
