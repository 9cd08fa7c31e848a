"""Scraping /metrics of a live API while a worker process trains: the running job's gauges move."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.metrics.test_metrics_endpoint import samples
from tests.support.processes import live_service
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def backend() -> str:
    # the gauges are read at scrape time from either database alike: once, on the production one.
    return "postgres"


ADMIN_KEY = "tun-admin-metrics-test-0123456789"


def test_a_running_jobs_step_moves_between_scrapes(
    settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    with live_service(settings, tmp_path / "logs", extra_env={"TUNERY_ADMIN_KEY": ADMIN_KEY}) as service:
        client = OpenAI(base_url=service.base_url, api_key=service.api_key)
        scrape_url = service.base_url.removesuffix("/v1") + "/metrics"
        dataset = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(16))
        uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL, training_file=uploaded.id, hyperparameters={"n_epochs": 6, "batch_size": 1}
        )
        steps: list[float] = []
        saw_running = saw_worker = False
        speeds: list[float] = []
        deadline = time.monotonic() + 240
        while (status := client.fine_tuning.jobs.retrieve(job.id).status) not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, service.log_tail()
            got = samples(httpx.get(scrape_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text)
            saw_running |= got.get(("tunery_jobs", frozenset({("status", "running")}))) == 1
            saw_worker |= (
                got.get(("tunery_workers", frozenset({("pool", "default"), ("state", "active")}))) or 0
            ) >= 1
            step = got.get(("tunery_job_step", frozenset({("job", job.id)})))
            if step is not None and (not steps or step != steps[-1]):
                steps.append(step)
            speed = got.get(("tunery_job_tokens_per_second", frozenset({("job", job.id)})))
            if speed is not None:
                speeds.append(speed)
            time.sleep(0.2)
        assert status == "succeeded", service.log_tail()
        final = samples(httpx.get(scrape_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text)
        member = httpx.get(scrape_url, headers={"Authorization": f"Bearer {service.api_key}"})

    assert saw_running and saw_worker
    assert len(steps) >= 2 and steps == sorted(steps), f"the step gauge did not move: {steps}"
    assert speeds and all(speed > 0 for speed in speeds), "the trainer's tokens/s reached no gauge"
    assert final["tunery_jobs", frozenset({("status", "succeeded")})] == 1
    assert ("tunery_job_step", frozenset({("job", job.id)})) not in final  # only running jobs have gauges
    assert member.status_code == 403
