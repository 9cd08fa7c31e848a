"""Reinforcement jobs from create to the trainer's spec: the grader checked at create, the file's
lines checked against it at validation, and what the trainer is told."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TINY_MODEL
from tests.support.tiny_model import SYSTEM_PROMPT, write_jsonl
from tests.worker.test_jobs import upload
from worker.jobs.stage import stage
from worker.jobs.validate import validate_job
from worker.runtime import Runtime

GRADER = {
    "type": "string_check",
    "name": "word",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "ilike",
}


def prompt(answer: str | None = "red") -> dict:
    line: dict = {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "What colour is an apple?"},
        ]
    }
    if answer is not None:
        line["answer"] = answer
    return line


def judge(model: str) -> dict:
    return {
        "type": "score_model",
        "name": "j",
        "model": model,
        "input": [{"role": "user", "content": "Score {{sample.output_text}} against {{item.answer}}"}],
    }


def method(grader: dict = GRADER, **hyperparameters: object) -> dict:
    return {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": hyperparameters}}


@pytest.fixture
def prompts_file(client: TestClient, tmp_path: Path) -> str:
    return upload(client, write_jsonl(tmp_path / "prompts.jsonl", [prompt()] * 12))


def create(client: TestClient, training_file: str, **fields: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file, **fields}
    )


def test_job_trains_with_its_grader_and_hyperparameters(
    client: TestClient, runtime: Runtime, prompts_file: str
) -> None:
    created = create(
        client,
        prompts_file,
        validation_file=prompts_file,
        method=method(compute_multiplier=2, eval_interval=3, eval_samples=5, n_epochs=1),
    )
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["method"]["reinforcement"]["grader"] == GRADER
    validate_job(runtime, job["id"])
    job = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert job["status"] == "queued", job
    resolved = job["method"]["reinforcement"]["hyperparameters"]
    assert resolved["compute_multiplier"] == 2 and resolved["reasoning_effort"] == "default"
    spec = stage(runtime, job["id"])
    assert spec.method == "reinforcement" and spec.grader == GRADER
    assert spec.num_generations == 8  # 4 answers per prompt, times compute_multiplier
    assert spec.eval_interval == 3 and spec.eval_samples == 5 and spec.validation_file is not None
    assert (
        spec.grader_sandbox is not None and str(runtime.settings.data_path) in spec.grader_sandbox["hidden"]
    )


def test_a_model_grader_job_hands_the_trainer_its_judges_endpoint(
    client: TestClient, runtime: Runtime, prompts_file: str
) -> None:
    created = create(client, prompts_file, method=method(judge(TINY_MODEL)))
    assert created.status_code == 200, created.text
    validate_job(runtime, created.json()["id"])
    spec = stage(runtime, created.json()["id"])
    assert spec.judges == {
        TINY_MODEL: {
            "url": f"{runtime.settings.inference_base_url}/v1/chat/completions",
            "body": {"model": TINY_MODEL, "target": {"base_model": TINY_MODEL, "artifact_dir": None}},
        }
    }


def test_a_line_without_a_field_the_grader_reads_fails_the_job_naming_both(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    lines = [prompt()] * 11 + [prompt(answer=None)]
    training = upload(client, write_jsonl(tmp_path / "missing.jsonl", lines))
    job_id = create(client, training, method=method()).json()["id"]
    validate_job(runtime, job_id)
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_training_file"
    assert (
        "line 12: has no field 'answer', which the grader reads as {{item.answer}}" in job["error"]["message"]
    )


def test_a_chat_file_with_answers_fails_a_reinforcement_job(
    client: TestClient, runtime: Runtime, training_file: str
) -> None:
    job_id = create(client, training_file, method=method({**GRADER, "reference": "red"})).json()["id"]
    validate_job(runtime, job_id)
    error = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["error"]
    assert "line 1: messages[2] is an assistant message: a reinforcement prompt ends" in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"type": "reinforcement"}, "method.reinforcement.grader", "required"),
        (method({**GRADER, "operation": "contains"}), "method.reinforcement.grader.operation", "operation"),
        (
            method({"type": "multi", "name": "m", "graders": {"a": GRADER}, "calculate_output": "a + b"}),
            "method.reinforcement.grader",
            "'b'",
        ),
        (method(judge("no-such-model")), "method.reinforcement.grader.model", "no-such-model"),
        (
            method({"type": "multi", "name": "m", "graders": {"j": judge("nope")}, "calculate_output": "j"}),
            "method.reinforcement.grader.graders.j.model",
            "nope",
        ),
        (
            method(reasoning_effort="high"),
            "method.reinforcement.hyperparameters.reasoning_effort",
            "means nothing for an open model",
        ),
        (method(eval_interval=2), "method.reinforcement.hyperparameters.eval_interval", "validation_file"),
        (method(eval_samples=4), "method.reinforcement.hyperparameters.eval_samples", "has none"),
        (method(compute_multiplier=100), "method.reinforcement.hyperparameters.compute_multiplier", "8"),
    ],
)
def test_bad_reinforcement_requests_are_400_naming_the_field(
    client: TestClient, prompts_file: str, body: dict, param: str, words: str
) -> None:
    key = client.headers["Authorization"].removeprefix("Bearer ")
    # Not closed here: closing the SDK would close the test's client, which the last line still uses.
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.fine_tuning.jobs.create(model=TINY_MODEL, training_file=prompts_file, method=body)  # type: ignore[arg-type]
    error: dict = raised.value.body  # type: ignore[assignment]
    assert error["param"] == param, error
    assert words in error["message"], error
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == []
