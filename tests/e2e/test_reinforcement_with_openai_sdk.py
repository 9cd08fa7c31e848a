"""A reinforcement job through real processes, driven only by the official openai SDK: prompts
uploaded, a string_check grader tried with graders.run, the job trained with GRPO, its rewards
reported on every step. (That the reward rises is tests/training/test_reinforcement.py's: through
the API's learning rates the tiny random model needs more steps than a test can spend.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import service, wait_for_terminal  # noqa: F401
from tests.support.processes import LiveService
from tests.support.tiny_model import SYSTEM_PROMPT, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
GRADER = {
    "type": "string_check",
    "name": "says red",
    "operation": "ilike",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
}


def test_reinforcement_job_reports_rewards_end_to_end(service: LiveService, tmp_path: Path) -> None:  # noqa: F811
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    prompt = {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "What colour is an apple?"},
        ],
        "answer": "red",
    }
    uploaded = client.files.create(
        file=write_jsonl(tmp_path / "p.jsonl", [prompt] * 10).open("rb"), purpose="fine-tune"
    )
    assert client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample="Red", item=prompt).reward == 1.0  # type: ignore[arg-type]

    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        method={
            "type": "reinforcement",
            "reinforcement": {
                "grader": GRADER,
                "hyperparameters": {
                    "n_epochs": 1,
                    "batch_size": 5,
                    "compute_multiplier": 0.5,
                    "learning_rate_multiplier": 10,
                },
            },
        },  # type: ignore[typeddict-item]
    )
    job, _ = wait_for_terminal(client, created.id, service, timeout=600)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    assert job.method is not None and job.method.type == "reinforcement"
    assert job.fine_tuned_model in [model.id for model in client.models.list()]
    metrics = [
        event.data
        for event in client.fine_tuning.jobs.list_events(job.id, limit=100)
        if event.type == "metrics"
    ]
    assert len(metrics) == 2  # 10 prompts, 5 a step
    for data in metrics:
        assert isinstance(data, dict)
        assert 0.0 <= data["train_reward_mean"] <= 1.0 and data["train_reward_std"] is not None
