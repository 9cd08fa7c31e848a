"""No call to the bucket happens while the API holds a database transaction open (the house rule: no
file copy, upload or network call inside a transaction).

Real hooks, no stand-ins: botocore's own `before-call` event on the store's client, and SQLAlchemy's
`begin`/`commit`/`rollback` events on the API's engine. Requests go one at a time, so the engine's
count of open transactions is the request's own.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.fine_tuning import artifacts
from api.storage import store_of
from tests.api.test_jobs import create
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.storage import write_artifact_files
from tests.support.tiny_model import jsonl, toy_chat_examples

LORA = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"]}


@pytest.fixture
def storage() -> str:
    return "s3"


class Watch:
    def __init__(self) -> None:
        self.open = 0
        self.calls: list[str] = []
        self.inside: list[str] = []
        self.lock = threading.Lock()

    def begin(self, *_: Any) -> None:
        with self.lock:
            self.open += 1

    def end(self, *_: Any) -> None:
        with self.lock:
            self.open -= 1

    def store_call(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)
        if self.open > 0:
            self.inside.append(model.name)


@pytest.fixture
def watch(app) -> Watch:  # type: ignore[no-untyped-def]
    watching = Watch()
    event.listen(app.state.engine, "begin", watching.begin)
    event.listen(app.state.engine, "commit", watching.end)
    event.listen(app.state.engine, "rollback", watching.end)
    store_of(app.state.settings).client.meta.events.register("before-call.s3", watching.store_call)  # type: ignore[attr-defined]
    return watching


def test_files_models_and_downloads_call_the_bucket_outside_transactions(
    client: TestClient, app, watch: Watch
) -> None:  # type: ignore[no-untyped-def]
    uploaded = client.post(
        "/v1/files", files={"file": ("t.jsonl", jsonl(toy_chat_examples(10)))}, data={"purpose": "fine-tune"}
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    assert client.get(f"/v1/files/{file_id}/content", headers={"Range": "bytes=0-9"}).status_code == 206

    job_id = create(client, file_id).json()["id"]
    succeed_with_checkpoints(app, job_id, steps=(4,))
    settings = app.state.settings
    adapter = {
        "adapter_config.json": json.dumps(LORA).encode(),
        "adapter_model.safetensors": os.urandom(9000),
    }
    write_artifact_files(settings, artifacts.adapter_dir(settings, job_id), adapter)
    name = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"]
    model = quote(name, safe="")
    assert client.get(f"/v1/models/{model}").json()["serving"]["vllm_lora"] is True
    assert client.get(f"/v1/models/{model}/download").status_code == 200
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter").status_code == 200
    assert (
        client.get(f"/v1/fine_tuning/checkpoints/{quote(name + ':ckpt-step-4', safe='')}/adapter").status_code
        == 200
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("api.queue.enqueue", lambda *args, **kwargs: None)
        assert client.get(f"/v1/models/{model}/download?format=merged").status_code == 202
    assert client.delete(f"/v1/models/{model}").status_code == 200
    assert client.delete(f"/v1/files/{file_id}").status_code == 200

    assert {"PutObject", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObjects"} <= set(watch.calls)
    assert watch.inside == []
