"""The line after `job.status == "succeeded"`: chat with the fine-tuned model through the official openai
SDK, against real `tunery api`, `tunery worker` and `tunery inference` processes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import wait_for_terminal
from tests.support.processes import LiveService, inference_process, live_service, service_env
from tests.support.services import free_port
from tests.support.tiny_model import SYSTEM_PROMPT, toy_chat_examples, write_jsonl

pytestmark = pytest.mark.e2e


@pytest.fixture
def backend() -> str:
    # inference reads no table of its own; the database is not the subject here: once, on the production one.
    return "postgres"


INFERENCE_HEALTH: dict[str, str] = {}  # the running backend's /health, set by the fixture


@pytest.fixture
def service(settings: Settings, tiny_model_dir: Path, tmp_path: Path) -> Iterator[LiveService]:
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    extra = {"TUNERY_INFERENCE_PORT": str(free_port()), "TUNERY_INFERENCE_MAX_ADAPTERS": "2"}
    logs = tmp_path / "logs"
    with (
        inference_process(settings, logs, extra) as url,
        live_service(settings, logs, extra_env=extra) as running,
    ):
        INFERENCE_HEALTH["url"] = f"{url}/health"
        yield running


def question(fruit: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"What colour is a {fruit}?"},
    ]


def other_project(service: LiveService) -> tuple[OpenAI, str]:
    """A client of a second project, made with `tunery keys create`, and that project's id."""
    port = int(service.base_url.split(":")[-1].split("/")[0])
    env = service_env(service.settings, service.api_key, port)

    def tunery(*args: str) -> str:
        command = [sys.executable, "-m", "api.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout

    key = tunery("keys", "create", "--project", "other-team").strip()
    found = re.search(r"other-team \((\S+)\)", tunery("keys", "list"))
    assert found, "tunery keys list names no other-team project"
    return OpenAI(base_url=service.base_url, api_key=key, max_retries=0), found.group(1)


ANSWER = "purple"


def one_answer_examples(n: int) -> list[dict]:
    """Every fruit is purple: one answer, which a tiny model learns in a few steps (a lookup of a colour
    per fruit takes it many more) and its random base model never gives."""
    examples = toy_chat_examples(n)
    for example in examples:
        example["messages"][-1]["content"] = ANSWER
    return examples


def test_the_fine_tuned_model_answers_what_it_learned(service: LiveService, tmp_path: Path) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key, max_retries=0)
    dataset = write_jsonl(tmp_path / "fruit.jsonl", one_answer_examples(12))
    uploaded = client.files.create(file=dataset.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        suffix="fruit",
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 50}
            },
        },
    )
    job, _ = wait_for_terminal(client, job.id, service)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    assert job.fine_tuned_model

    # The fine-tuned model gives the learned answer (greedy) and ends its turn there; the base does not.
    for fruit in ("apple", "lime", "plum"):
        tuned = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=question(fruit),
            temperature=0,
            max_tokens=30,  # type: ignore[arg-type]
        )
        assert tuned.choices[0].message.content == ANSWER, service.log_tail()
        assert tuned.choices[0].finish_reason == "stop"
        assert tuned.usage is not None and tuned.usage.completion_tokens < 10
        assert tuned.model == job.fine_tuned_model
    base = client.chat.completions.create(
        model=TINY_MODEL,
        messages=question("apple"),
        temperature=0,
        max_tokens=30,  # type: ignore[arg-type]
    )
    assert base.choices[0].message.content != ANSWER

    # Streaming gives the same text, usage last.
    chunks = list(
        client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=question("apple"),  # type: ignore[arg-type]
            temperature=0,
            max_tokens=30,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == tuned.usage.completion_tokens
    )

    # A checkpoint model answers too (the last epoch's is the final model's twin).
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    newest = max(checkpoints, key=lambda c: c.step_number)
    from_checkpoint = client.chat.completions.create(
        model=newest.fine_tuned_model_checkpoint,
        messages=question("lime"),
        temperature=0,
        max_tokens=30,  # type: ignore[arg-type]
    )
    assert from_checkpoint.choices[0].message.content == ANSWER

    # Another project sees none of it, until a checkpoint is shared with it.
    other, other_id = other_project(service)
    with pytest.raises(NotFoundError) as hidden:
        other.chat.completions.create(model=job.fine_tuned_model, messages=question("lime"))  # type: ignore[arg-type]
    assert hidden.value.code == "model_not_found"
    name = newest.fine_tuned_model_checkpoint
    with pytest.raises(NotFoundError):
        other.chat.completions.create(model=name, messages=question("lime"))  # type: ignore[arg-type]
    client.fine_tuning.checkpoints.permissions.create(name, project_ids=[other_id])
    shared = other.chat.completions.create(model=name, messages=question("lime"), temperature=0)  # type: ignore[arg-type]
    assert shared.choices[0].message.content == ANSWER

    # Fields Tunery does not do are refused by name, not ignored.
    with pytest.raises(BadRequestError) as unsupported:
        client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=question("lime"),  # type: ignore[arg-type]
            frequency_penalty=0.5,
        )
    assert unsupported.value.param == "frequency_penalty"

    assert_a_client_that_leaves_stops_its_generation(service)

    # A deleted model no longer answers.
    client.models.delete(job.fine_tuned_model)
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model=job.fine_tuned_model, messages=question("lime"))  # type: ignore[arg-type]


def assert_a_client_that_leaves_stops_its_generation(service: LiveService) -> None:
    """A client that closes its stream stops the backend's generation through the API: the backend
    counts the generation as cancelled, not finished."""

    def cancelled() -> int:
        return int(httpx.get(INFERENCE_HEALTH["url"], timeout=5).json()["cancelled_generations"])

    def idle() -> bool:  # the cancelled request has left the line too: the next one is not refused
        return int(httpx.get(INFERENCE_HEALTH["url"], timeout=5).json()["in_flight"]) == 0

    def wait_for_cancelled(count: int) -> None:
        deadline = time.monotonic() + 30
        while cancelled() < count or not idle():
            health = httpx.get(INFERENCE_HEALTH["url"], timeout=5).json()
            assert time.monotonic() < deadline, (
                f"not cancelled ({health}, wanted {count}):\n{service.log_tail()}"
            )
            time.sleep(0.1)

    # Greedy, the random base model says ~280 tokens to this (deterministically: sampled, it may end
    # at once), so it is still generating when the client leaves.
    body = {"model": TINY_MODEL, "messages": question("apple"), "max_tokens": 400, "temperature": 0}
    headers = {"Authorization": f"Bearer {service.api_key}"}
    before = cancelled()
    with (
        httpx.Client(base_url=service.base_url, headers=headers, timeout=30) as http,
        http.stream("POST", "/chat/completions", json={**body, "stream": True}) as streamed,
    ):
        assert streamed.status_code == 200
        next(streamed.iter_lines())  # the first chunk: it is generating; then the client leaves
    wait_for_cancelled(before + 1)
