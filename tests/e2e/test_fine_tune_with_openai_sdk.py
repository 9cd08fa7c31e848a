"""The whole path of a job through real processes, driven only by the official openai SDK:
upload -> create -> validating_files -> queued -> running -> succeeded -> adapter that generates."""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import LiveService, live_service, service_env
from tests.support.tiny_model import toy_chat_examples, write_jsonl

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def service(settings: Settings, tiny_model_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    with live_service(settings, tmp_path / "logs") as running:
        yield running


def wait_for_terminal(client: OpenAI, job_id: str, service: LiveService, timeout: float = 300):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status in TERMINAL:
            return job, seen
        time.sleep(0.5)
    raise AssertionError(
        f"job {job_id} did not finish in {timeout}s (statuses {seen}):\n{service.log_tail()}"
    )


def test_fine_tune_a_lora_adapter_end_to_end(
    service: LiveService, tmp_path: Path, tiny_model_dir: Path
) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    dataset = write_jsonl(tmp_path / "fruit.jsonl", toy_chat_examples(24))
    uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
    assert client.files.wait_for_processing(uploaded.id).status == "processed"

    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        suffix="fruit",
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 25}
            },
        },
    )
    assert created.status == "validating_files"
    job, seen = wait_for_terminal(client, created.id, service)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    assert seen[0] in ("validating_files", "queued", "running")

    # What the job says about itself.
    assert job.fine_tuned_model == f"ft:{TINY_MODEL}:default:fruit:{job.id[-8:]}"
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.finished_at and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs == 4
    assert job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == 25
    assert len(job.result_files) == 1

    # Events tell the story, newest first, with the loss as it went.
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=5))
    assert len(events) > 5  # the SDK followed the cursor across pages
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed"
    for expected in (
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
        f"Created fine-tuning job: {job.id}",
    ):
        assert expected in messages
    metrics = sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])
    total_steps = metrics[-1]["total_steps"]
    assert total_steps == 4 * 24 // 4
    assert [m["step"] for m in metrics] == list(range(1, total_steps + 1))
    per_epoch = total_steps // 4
    first_epoch = statistics.mean(m["train_loss"] for m in metrics[:per_epoch])
    last_epoch = statistics.mean(m["train_loss"] for m in metrics[-per_epoch:])
    assert last_epoch < 0.5 * first_epoch, (first_epoch, last_epoch)

    # The result file is OpenAI's step_metrics.csv, one row per step.
    result = client.files.retrieve(job.result_files[0])
    assert result.purpose == "fine-tune-results"
    assert result.filename == "step_metrics.csv"
    rows = client.files.content(result.id).text.strip().splitlines()
    assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert len(rows) == total_steps + 1

    # The new model is listed beside the base model.
    model_ids = [m.id for m in client.models.list()]
    assert TINY_MODEL in model_ids and job.fine_tuned_model in model_ids
    assert client.models.retrieve(job.fine_tuned_model).id == job.fine_tuned_model

    # The adapter loads in peft on the base model and generates.
    archive = httpx.get(
        f"{service.base_url}/fine_tuning/jobs/{job.id}/adapter",
        headers={"Authorization": f"Bearer {service.api_key}"},
        timeout=30,
    )
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:") as tar:
        tar.extractall(tmp_path / "download", filter="data")
    assert_adapter_generates(tiny_model_dir, tmp_path / "download" / "adapter")

    # The README's example script does the same for a user.
    tried = run_try_adapter(service, job.id, "What colour is a lime?")
    assert tried.returncode == 0, tried.stderr
    lines = tried.stdout.strip().splitlines()
    assert lines[0].startswith(f"{TINY_MODEL}:") and lines[1].startswith(f"{job.fine_tuned_model}:")


def run_try_adapter(service: LiveService, job_id: str, question: str) -> subprocess.CompletedProcess[str]:
    port = service.base_url.split(":")[-1].split("/")[0]
    env = service_env(service.settings, service.api_key, int(port))
    script = Path(__file__).resolve().parents[2] / "examples" / "try_adapter.py"
    return subprocess.run(
        [sys.executable, str(script), job_id, question], env=env, capture_output=True, text=True, timeout=120
    )


def assert_adapter_generates(base_dir: Path, adapter_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (adapter_dir / "adapter_config.json").is_file()
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    prompt = toy_chat_examples(1)[0]["messages"][:2]
    inputs = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_errors_reach_the_sdk_as_its_exception_classes(service: LiveService, tmp_path: Path) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key, max_retries=0)
    broken = tmp_path / "broken.jsonl"
    # An answer of weight 0 is nothing to learn (a line with no answer at all is a reinforcement prompt).
    nothing_to_learn = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}]}
    )
    broken.write_text(nothing_to_learn + "\nnot json\n")
    with pytest.raises(BadRequestError) as bad_file:
        client.files.create(file=broken.open("rb"), purpose="fine-tune")
    assert "line 1: messages has no assistant message" in bad_file.value.message
    assert "line 2: is not valid JSON" in bad_file.value.message

    with pytest.raises(NotFoundError) as unknown_model:
        client.fine_tuning.jobs.create(model="no-such-model", training_file="file-x")
    assert unknown_model.value.code == "model_not_found"

    wrong_key = OpenAI(base_url=service.base_url, api_key="tun-not-a-real-key-000000", max_retries=0)
    from openai import AuthenticationError

    with pytest.raises(AuthenticationError):
        wrong_key.models.list()
