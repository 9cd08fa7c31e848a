"""The reinforcement method in the trainer: GRPO with a grader as the reward, on the tiny model."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest
import torch
from transformers import set_seed

from catalog.recipes import RECIPE_TYPE_NAMES, RECIPE_TYPES
from tests.support.tiny_model import toy_reinforcement_prompts, write_jsonl
from tests.training.test_recipes import LEARNING_RATES, build, trainable
from tests.training.trainer_runs import toy_spec, train_in_process
from worker.training.artifacts import TrainingOutcome
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
    return toy_reinforcement_prompts(n)


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
    # Full fine-tuning at a high rate: the tiny random model learns to say the word within a few steps.
    recipe = Recipe(type="full", max_seq_length=64, gradient_checkpointing=False)
    run = train_in_process(reinforcement_spec(tmp_path, model_dir, learning_rate=1e-2, recipe=recipe))
    metrics = run.of("metrics")
    rewards = [event["train_reward_mean"] for event in metrics]
    assert len(rewards) == 16 and all(event["train_reward_std"] is not None for event in metrics)
    first, last = statistics.mean(rewards[:3]), statistics.mean(rewards[-3:])
    assert last > first + 0.3, rewards
    assert run.outcome.artifact_dir.is_dir()  # type: ignore[attr-defined]
    checkpoint = run.of("checkpoint")[-1]["metrics"]
    assert checkpoint["train_reward_mean"] == rewards[-1] and checkpoint["train_reward_std"] is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox confines graders only when run as root")
def test_lora_with_a_multi_grader_whose_python_part_fails_still_completes(
    tmp_path: Path, model_dir: Path
) -> None:
    hostile = (
        "import socket\n"
        "def grade(sample, item):\n"
        "    socket.create_connection(('127.0.0.1', 5432), timeout=1)\n"
    )
    grader = {
        "type": "multi",
        "name": "both",
        "graders": {
            "net": {"type": "python", "name": "net", "source": hostile},
            "similar": {
                "type": "text_similarity",
                "name": "similar",
                "input": "{{sample.output_text}}",
                "reference": "{{item.word}}",
                "evaluation_metric": "fuzzy_match",
            },
        },
        "calculate_output": "net + similar",
    }
    training = write_jsonl(tmp_path / "few.jsonl", prompts(4))
    validation = write_jsonl(tmp_path / "valid.jsonl", prompts(2))
    spec = reinforcement_spec(
        tmp_path / "run",
        model_dir,
        grader=grader,
        num_generations=2,
        max_completion_tokens=4,
        training_file=str(training),
        validation_file=str(validation),
        n_epochs=1,
        eval_interval=1,
        eval_samples=2,
        grader_sandbox={"cpu_seconds": 2, "wall_seconds": 10, "hidden": [str(tmp_path)]},
    )
    run = train_in_process(spec)
    metrics = run.of("metrics")
    assert len(metrics) == 2
    assert all(event["valid_reward_mean"] is not None for event in metrics), metrics
    warnings = [event["message"] for event in run.of("message") if event.get("level") == "warn"]
    assert any("Network is unreachable" in message for message in warnings), warnings


SIMILAR = {
    "type": "text_similarity",
    "name": "near red",
    "input": "{{sample.output_text}}",
    "reference": "{{item.word}}",
    "evaluation_metric": "fuzzy_match",
}


@pytest.mark.parametrize("recipe_type", RECIPE_TYPE_NAMES)
def test_every_recipe_trains_with_reinforcement(
    tmp_path: Path, model_dir: Path, biased_model_dir: Path, recipe_type: str
) -> None:
    # fuzzy_match scores each answer differently, so every group has advantages and every step a gradient.
    base = biased_model_dir if recipe_type == "bitfit" else model_dir
    recipe = Recipe(type=recipe_type, max_seq_length=64, num_virtual_tokens=4, gradient_checkpointing=False)
    spec = reinforcement_spec(
        tmp_path,
        base,
        recipe=recipe,
        grader=SIMILAR,
        learning_rate=LEARNING_RATES[recipe_type],
        training_file=str(write_jsonl(tmp_path / "few.jsonl", prompts(4))),
        num_generations=2,
        max_completion_tokens=4,
        n_epochs=1,
    )
    set_seed(spec.seed)  # as the run does before it builds the model: the same initial weights
    before = {name: p.detach().clone() for name, p in trainable(build(recipe, base, tmp_path / "b")).items()}

    if RECIPE_TYPES[recipe_type].family == "lora":
        # B starts at zero: a B that moved took a gradient step, whatever A's random start was (the
        # quantized bases draw from the generator as they load).
        before = {name: weight for name, weight in before.items() if "lora_B" in name}

    run = train_in_process(spec)

    metrics = run.of("metrics")
    assert len(metrics) == 2 and all(0.0 <= event["train_reward_mean"] <= 1.0 for event in metrics)
    assert isinstance(run.outcome, TrainingOutcome)
    assert run.outcome.artifact_format == RECIPE_TYPES[recipe_type].artifact
    after = dict(_trained(run.outcome, base).named_parameters())
    changed = [name for name, weight in before.items() if not torch.equal(weight, after[name].detach())]
    assert changed, f"no trainable weight of {recipe_type} moved"
    said = [event["message"] for event in run.of("message")]
    assert any(message.startswith("rollouts sampled on the trainer's own model") for message in said), said


def _trained(outcome: TrainingOutcome, base: Path) -> torch.nn.Module:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if outcome.artifact_format == "model":
        return AutoModelForCausalLM.from_pretrained(outcome.artifact_dir)
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), outcome.artifact_dir)


def test_max_seq_length_caps_prompt_and_answer_together(tmp_path: Path, model_dir: Path) -> None:
    import io

    from transformers import AutoTokenizer

    from worker.training.data import DatasetError
    from worker.training.methods.reinforcement import prepare
    from worker.training.progress import ProgressWriter

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = prompts(1)[0]["messages"]
    longest = len(
        tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)["input_ids"]
    )
    recipe = Recipe(type="lora", max_seq_length=longest + 5)
    stream = io.StringIO()
    data = prepare(reinforcement_spec(tmp_path, model_dir, recipe=recipe), tokenizer, ProgressWriter(stream))
    assert data.max_completion_tokens == 5
    assert f"answers grow to at most 5 tokens: max_seq_length {longest + 5}" in stream.getvalue()
    roomy = Recipe(type="lora", max_seq_length=longest + 100)
    assert (
        prepare(
            reinforcement_spec(tmp_path, model_dir, recipe=roomy), tokenizer, ProgressWriter(stream)
        ).max_completion_tokens
        == 8
    )

    with pytest.raises(DatasetError, match="leaves no room for an answer") as refused:
        tight = Recipe(type="lora", max_seq_length=longest)
        prepare(reinforcement_spec(tmp_path, model_dir, recipe=tight), tokenizer, ProgressWriter(stream))
    assert refused.value.line == 1
