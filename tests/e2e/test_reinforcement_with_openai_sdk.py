"""A reinforcement job through real processes, driven only by the official openai SDK: prompts
uploaded, a string_check grader tried with graders.run, the job trained with GRPO, and its mean
reward rising from the first steps to the last.

The task is one the tiny random base rarely gets right: say the word "red" (about 6% of its 8-token
answers do). What makes it learn within 16 steps of about 3 seconds each, found by trying: LoRA at
0.1 (learning_rate_multiplier 5000 on the reinforcement base of 2e-5: the random model's weights
need large moves), 8 answers per prompt (compute_multiplier 2) so most groups hold one that says it,
and answers cut at 8 tokens through recipe.max_seq_length (prompt and answer together), which
keeps the rollouts short. A fixed seed makes the run the same every time."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import service, wait_for_terminal  # noqa: F401
from tests.support.processes import LiveService
from tests.support.tiny_model import toy_reinforcement_prompts, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
GRADER = {
    "type": "string_check",
    "name": "says red",
    "operation": "like",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
}
ANSWER_TOKENS = 8


@pytest.fixture
def backend() -> str:
    # The subject is training, not the database: once, on the production one.
    return "postgres"


def prompts(n: int) -> list[dict]:
    return toy_reinforcement_prompts(n, field="answer")


def test_reinforcement_job_raises_its_mean_reward_end_to_end(
    service: LiveService,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    client = OpenAI(base_url=service.base_url, api_key=service.api_key)
    lines = prompts(16)
    uploaded = client.files.create(
        file=write_jsonl(tmp_path / "p.jsonl", lines).open("rb"), purpose="fine-tune"
    )
    assert (
        client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample="Red", item=lines[0]).reward == 0.0
    )  # type: ignore[arg-type]
    assert (
        client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample="It is red", item=lines[0]).reward
        == 1.0
    )  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    longest = max(
        len(tokenizer.apply_chat_template(line["messages"], add_generation_prompt=True)["input_ids"])
        for line in lines
    )

    created = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=uploaded.id,
        seed=7,
        method={
            "type": "reinforcement",
            "reinforcement": {
                "grader": GRADER,
                "hyperparameters": {
                    "n_epochs": 2,
                    "batch_size": 2,
                    "compute_multiplier": 2,
                    "learning_rate_multiplier": 5000,
                },
            },
        },  # type: ignore[typeddict-item]
        extra_body={"recipe": {"type": "lora", "max_seq_length": longest + ANSWER_TOKENS}},
    )
    job, _ = wait_for_terminal(client, created.id, service, timeout=600)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    assert job.method is not None and job.method.type == "reinforcement"
    assert job.fine_tuned_model in [model.id for model in client.models.list()]
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=200))
    metrics = sorted(
        (event.data for event in events if event.type == "metrics"),
        key=lambda data: data["step"],  # type: ignore[index]
    )
    assert len(metrics) == 16  # 16 prompts, 2 a step, 2 epochs
    rewards = [data["train_reward_mean"] for data in metrics]  # type: ignore[index]
    assert all(0.0 <= reward <= 1.0 for reward in rewards) and all(
        data["train_reward_std"] is not None  # type: ignore[index]
        for data in metrics
    )
    first, last = statistics.mean(rewards[:4]), statistics.mean(rewards[-4:])
    assert last > first + 0.25, rewards
    assert any(f"answers grow to at most {ANSWER_TOKENS} tokens" in event.message for event in events)
