"""Through real processes: a job trained by a Celery worker ends, and the receiver registered with the
API gets `fine_tuning.job.succeeded`, accepted by the official SDK's verifier, on its third try."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from openai import OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import live_service
from tests.support.tiny_model import toy_chat_examples, write_jsonl
from tests.support.webhook_receiver import webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def backend() -> str:
    # deliveries are tested on both databases in-process (test_webhook_delivery.py); live, once.
    return "postgres"


def test_a_finished_job_is_told_to_a_receiver_that_fails_twice(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    env = {"TUNERY_WEBHOOK_ALLOW_PRIVATE": "1", "TUNERY_WEBHOOK_RETRY_SECONDS": "0.5"}
    with (
        webhook_receiver(answers=[500, 502]) as receiver,
        live_service(settings, tmp_path / "logs", extra_env=env) as service,
    ):
        client = OpenAI(base_url=service.base_url, api_key=service.api_key)
        endpoint = client.post(
            "/webhooks",
            body={"url": receiver.url, "events": ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]},
            cast_to=object,
        )
        assert isinstance(endpoint, dict)
        dataset = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(16))
        uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL, training_file=uploaded.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
        )
        deadline = time.monotonic() + 240
        while client.fine_tuning.jobs.retrieve(job.id).status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, service.log_tail()
            time.sleep(0.5)
        finished = client.fine_tuning.jobs.retrieve(job.id)
        assert finished.status == "succeeded", f"{finished.error}\n{service.log_tail()}"
        received = receiver.wait_for(3, timeout=60)
        time.sleep(1.5)  # time for a fourth request, which must not come
        assert len(receiver.received) == 3, service.log_tail()

    assert [r.answered for r in received] == [500, 502, 200]
    event = client.webhooks.unwrap(received[-1].body, received[-1].headers, secret=endpoint["secret"])
    assert event.type == "fine_tuning.job.succeeded"
    assert event.data.id == job.id
