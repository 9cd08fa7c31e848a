"""An upload holds no database transaction while its body streams in or while it is checked.

On the embedded SQLite default a write transaction locks the whole database: an upload that held
one while a 500 MB body arrived, or while its lines were checked, blocked every other writer
(a job create, a cancel) until it ended. The API runs as its own process here, as deployed.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import Cluster
from tests.support.tiny_model import jsonl, toy_chat_examples

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.alone]

SEND_SECONDS = 10.0
# Big enough that staging and checking it take a while: the time a transaction would be held.
UPLOAD_EXAMPLES = 150_000


@pytest.fixture
def api(settings: Settings, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Cluster]:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    # A create every 0.2 s for the whole upload: more than the default per-key limit allows.
    cluster = Cluster(settings, tmp_path / "logs", extra_env={"TUNERY_RATE_LIMIT_JOBS_PER_MINUTE": "0"})
    try:
        cluster.start_api()
        yield cluster
    finally:
        cluster.stop_all()


def _multipart(content: bytes, boundary: str) -> list[bytes]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return [head, content, f"\r\n--{boundary}--\r\n".encode()]


def _slow_upload(cluster: Cluster, content: bytes, result: dict[str, object]) -> None:
    """POST /v1/files, sending the body in pieces spread over SEND_SECONDS."""
    boundary = "tunery-slow-upload"
    parts = _multipart(content, boundary)
    body = b"".join(parts)
    connection = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=120)
    connection.putrequest("POST", "/v1/files")
    connection.putheader("Authorization", f"Bearer {cluster.api_key}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    pieces = 50
    size = len(body) // pieces + 1
    for start in range(0, len(body), size):
        connection.send(body[start : start + size])
        time.sleep(SEND_SECONDS / pieces)
    response = connection.getresponse()
    result["status"] = response.status
    result["body"] = response.read()
    connection.close()


def test_a_slow_large_upload_does_not_delay_job_creates(api: Cluster, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {api.api_key}"}
    with httpx.Client(base_url=api.base_url, headers=headers, timeout=60) as client:
        small = client.post(
            "/files",
            files={"file": ("t.jsonl", jsonl(toy_chat_examples(10)))},
            data={"purpose": "fine-tune"},
        )
        assert small.status_code == 200, small.text
        training_file = small.json()["id"]

        result: dict[str, object] = {}
        uploader = threading.Thread(
            target=_slow_upload, args=(api, jsonl(toy_chat_examples(UPLOAD_EXAMPLES)), result)
        )
        uploader.start()
        latencies = []
        while uploader.is_alive():
            started = time.monotonic()
            created = client.post(
                "/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file}
            )
            latencies.append(time.monotonic() - started)
            assert created.status_code == 200, created.text
            time.sleep(0.2)
        uploader.join()

    assert result.get("status") == 200, (result, api.log_tail())
    # Creates kept going through the whole upload, the checking of its lines included.
    assert len(latencies) >= SEND_SECONDS / 1.5
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
