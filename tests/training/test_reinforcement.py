"""The reinforcement method in the trainer: GRPO with a grader as the reward, on the tiny model."""

from __future__ import annotations

import statistics
from pathlib import Path

from tests.support.tiny_model import FRUIT_COLOURS, SYSTEM_PROMPT, write_jsonl
from tests.training.trainer_runs import toy_spec, train_in_process
from worker.training.spec import Recipe

# Answer with one fixed word: the random model says "red" in a few of its sampled answers, and GRPO
# makes it say so more often.
RED = {
    "type": "string_check",
    "name": "says red",
    "input": "{{sample.output_text}}",
    "reference": "{{item.word}}",
    "operation": "like",
}


def prompts(n: int) -> list[dict]:
    fruits = list(FRUIT_COLOURS)
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"What colour is a {fruits[i % len(fruits)]}?"},
            ],
            "word": "red",
        }
        for i in range(n)
    ]


def reinforcement_spec(directory: Path, model_dir: Path, **overrides):  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    fields = dict(
        method="reinforcement",
        training_file=str(write_jsonl(directory / "prompts.jsonl", prompts(16))),
        grader=RED,
        num_generations=8,
        max_completion_tokens=8,
        batch_size=2,
        learning_rate=5e-3,
        recipe=Recipe(type="lora", max_seq_length=64),
    )
    fields.update(overrides)
    n_epochs = fields.pop("n_epochs", 2)
    return toy_spec(directory, model_dir, n_train=1, n_epochs=n_epochs, **fields)


def test_mean_reward_rises_with_a_string_check_grader(tmp_path: Path, model_dir: Path) -> None:
    run = train_in_process(reinforcement_spec(tmp_path, model_dir, n_epochs=3))
    rewards = [event["train_reward_mean"] for event in run.of("metrics")]
    print(rewards)
    assert all(reward is not None for reward in rewards)
    assert all(event["train_reward_std"] is not None for event in run.of("metrics"))
    first, last = statistics.mean(rewards[:4]), statistics.mean(rewards[-4:])
    assert last > first + 0.2, rewards
