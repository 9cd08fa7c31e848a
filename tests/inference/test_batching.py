"""Mixed-adapter batches: requests for different LoRA adapters of one base, waiting together, are
answered by one `generate` call, each with its own adapter's answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.inference.conftest import random_lora_artifact
from worker.inference.server import create_inference_app

FRUITS = ("lime", "banana", "blueberry")


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("batching"), inference_max_adapters=3, inference_max_queue=8
    )
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    with TestClient(create_inference_app(settings)) as client:
        client.targets = [  # type: ignore[attr-defined]
            {
                "base_model": TINY_MODEL,
                "artifact_dir": str(random_lora_artifact(settings, tiny_model_dir, f"ftjob-b{i}", seed=i)),
            }
            for i in range(3)
        ]
        yield client


def ask(server: TestClient, target: dict[str, Any], fruit: str) -> str:
    body = {
        "model": "ft:batch",
        "messages": [{"role": "user", "content": f"What colour is a {fruit}?"}],
        "temperature": 0,
        "max_tokens": 12,
        "target": target,
    }
    response = server.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_concurrent_requests_for_three_adapters_run_in_one_batch_with_their_own_answers(
    batching_server: TestClient,
) -> None:
    server, engine = batching_server, batching_server.app.state.engine  # type: ignore[attr-defined]
    targets = server.targets  # type: ignore[attr-defined]
    alone = [ask(server, target, fruit) for target, fruit in zip(targets, FRUITS, strict=True)]
    assert len(set(alone)) == 3, "the adapters should answer differently"
    assert engine.batch_sizes == []

    gate = threading.Event()
    engine._executor.submit(gate.wait)  # hold the generation thread until all three wait
    with ThreadPoolExecutor(3) as threads:
        answers = [threads.submit(ask, server, t, f) for t, f in zip(targets, FRUITS, strict=True)]
        deadline = time.monotonic() + 10
        while engine.admitted < 3:
            assert time.monotonic() < deadline, "the requests did not reach the engine"
            time.sleep(0.01)
        gate.set()
        together = [answer.result(timeout=60) for answer in answers]

    assert together == alone
    assert engine.batch_sizes == [3]
