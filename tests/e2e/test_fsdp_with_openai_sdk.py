"""An FSDP job (recipe distributed "fsdp", 2 gloo processes on CPU) through real processes, driven by
the official openai SDK: it trains sharded on both ranks, and its adapter, gathered on rank 0, loads
in peft on the base model and generates, like a one-process adapter."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import assert_adapter_generates, service, wait_for_terminal
from tests.support.processes import LiveService
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = pytest.mark.e2e
__all__ = ["service"]  # the live API and worker of the SDK's end-to-end tests


@pytest.fixture
def backend() -> str:
    return "postgres"  # sharding is the subject here, not the database


def test_an_fsdp_job_trains_on_two_ranks_and_its_adapter_loads_and_generates(
    service: LiveService, tmp_path: Path, tiny_model_dir: Path
) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    dataset = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_examples(24))
    uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
    hyperparameters = {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 25}

    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        hyperparameters=hyperparameters,
        extra_body={"recipe": {"type": "lora", "distributed": "fsdp", "num_gpus": 2}},
    )
    job, _ = wait_for_terminal(client, created.id, service)

    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
    sharded = "fsdp: 2 LlamaDecoderLayer blocks and the root sharded over 2 ranks"
    assert any(m.startswith(sharded) for m in messages)
    archive = httpx.get(
        f"{service.base_url}/fine_tuning/jobs/{job.id}/adapter",
        headers={"Authorization": f"Bearer {service.api_key}"},
        timeout=30,
    )
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:") as tar:
        tar.extractall(tmp_path / "download", filter="data")
    assert_adapter_generates(tiny_model_dir, tmp_path / "download" / "adapter")
