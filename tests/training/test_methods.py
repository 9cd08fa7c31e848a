"""DPO and classification, with adapter and whole-model recipes, on the tiny models."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from tests.support.tiny_model import (
    build_tiny_encoder_model,
    toy_classification_examples,
    toy_preference_examples,
    write_jsonl,
)
from tests.training.trainer_runs import (
    InProcessRun,
    TrainerRun,
    toy_spec,
    train_in_process,
    train_to_completion,
)
from worker.training.artifacts import TrainingOutcome
from worker.training.data import DatasetError
from worker.training.spec import Recipe, TrainingSpec

LABELS = sorted(set(example["label"] for example in toy_classification_examples(8)))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder_model(tmp_path_factory.mktemp("tiny-encoder"))


def dpo_spec(directory: Path, model_dir: Path, recipe_type: str, learning_rate: float) -> TrainingSpec:
    spec = toy_spec(
        directory,
        model_dir,
        n_train=16,
        n_epochs=3,
        learning_rate=learning_rate,
        method="dpo",
        beta=0.1,
        recipe=Recipe(type=recipe_type, max_seq_length=64),
    )
    write_jsonl(Path(spec.training_file), toy_preference_examples(16))
    return spec


def classification_spec(
    directory: Path, base_dir: Path, recipe: Recipe, learning_rate: float, n_valid: int = 0
) -> TrainingSpec:
    spec = toy_spec(
        directory,
        base_dir,
        n_train=16,
        n_epochs=4,
        n_valid=n_valid,
        learning_rate=learning_rate,
        method="classification",
        recipe=recipe,
    )
    write_jsonl(Path(spec.training_file), toy_classification_examples(16))
    if spec.validation_file:
        write_jsonl(Path(spec.validation_file), toy_classification_examples(n_valid))
    return spec


def classify(model, artifact_dir: Path) -> float:
    """Accuracy of `model` on the toy examples, with the artifact's tokenizer and label names."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(artifact_dir)
    examples = toy_classification_examples(8)
    inputs = tokenizer([example["text"] for example in examples], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        predicted = model(**inputs).logits.argmax(dim=-1).tolist()
    id2label = model.config.id2label
    return sum(id2label[p] == example["label"] for p, example in zip(predicted, examples, strict=True)) / 8


class TestDPO:
    @pytest.fixture(scope="class")
    def lora_run(self, tmp_path_factory, model_dir) -> InProcessRun:
        return train_in_process(dpo_spec(tmp_path_factory.mktemp("dpo-lora"), model_dir, "lora", 5e-3))

    @pytest.fixture(scope="class")
    def full_run(self, tmp_path_factory, model_dir) -> InProcessRun:
        return train_in_process(dpo_spec(tmp_path_factory.mktemp("dpo-full"), model_dir, "full", 1e-3))

    def test_lora_learns_the_preference(self, lora_run):
        losses = lora_run.losses()
        accuracies = [line["train_mean_token_accuracy"] for line in lora_run.of("metrics")]

        assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at the start
        assert max(losses[-3:]) < 0.3, losses
        assert accuracies[-1] == 1.0

    def test_lora_artifact_is_only_the_trained_adapter_and_loads(self, lora_run, model_dir):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        artifact_dir = lora_run.outcome.artifact_dir
        assert not (artifact_dir / "ref").exists()  # TRL's frozen reference copy stays out
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), artifact_dir)
        assert json.loads((artifact_dir / "tunery.json").read_text())["method"] == "dpo"
        assert model.active_adapter == "default"

    def test_policy_and_reference_run_padding_free(self, lora_run, full_run):
        for run in (lora_run, full_run):
            messages = [event["message"] for event in run.of("message")]
            assert any(message.startswith("padding-free batches") for message in messages), messages

    def test_whole_model_recipe_trains_against_a_frozen_copy(self, full_run):
        assert max(full_run.losses()[-3:]) < 0.3, full_run.losses()
        assert full_run.outcome.artifact_format == "model"
        assert (full_run.outcome.artifact_dir / "model.safetensors").is_file()

    def test_trained_tokens_count_prompt_and_both_answers(self, lora_run, model_dir):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        example = toy_preference_examples(1)[0]
        prompt = example["input"]["messages"]
        one = sum(
            len(tokenizer.apply_chat_template(prompt + example[key], tokenize=True)["input_ids"])
            for key in ("preferred_output", "non_preferred_output")
        )
        assert lora_run.outcome.trained_tokens > 16 * 3 * one * 0.8

    def test_bad_preference_line_is_named(self, tmp_path):
        from worker.training.methods.dpo import read_preferences

        lines = toy_preference_examples(2)
        del lines[1]["non_preferred_output"]
        path = write_jsonl(tmp_path / "prefs.jsonl", lines)

        with pytest.raises(DatasetError, match="line 2: non_preferred_output is missing") as error:
            read_preferences(str(path), "training")
        assert error.value.purpose == "training"


class TestClassificationOnADecoder:
    @pytest.fixture(scope="class")
    def run(self, tmp_path_factory, model_dir) -> TrainerRun:
        directory = tmp_path_factory.mktemp("classify-decoder")
        recipe = Recipe(type="lora", max_seq_length=64)
        spec = classification_spec(directory, model_dir, recipe, learning_rate=1e-2, n_valid=8)
        return train_to_completion(spec, directory)

    def test_a_decoder_classifies_padding_free(self, run):
        messages = [event["message"] for event in run.of("message")]
        assert any(message.startswith("padding-free batches") for message in messages), messages

    def test_completed_names_the_labels_in_id_order(self, run):
        assert run.events[-1]["labels"] == LABELS
        assert run.events[-1]["artifact_format"] == "peft"

    def test_loss_falls_and_validation_accuracy_is_reported(self, run):
        metrics = run.of("metrics")
        losses = [line["train_loss"] for line in metrics]
        assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses
        evaluated = [line for line in metrics if line["valid_loss"] is not None]
        assert [line["step"] for line in evaluated] == [4, 8, 12, 16]
        assert all(0.0 <= line["valid_mean_token_accuracy"] <= 1.0 for line in evaluated)

    def test_adapter_with_its_head_classifies(self, run, model_dir):
        from peft import PeftModel
        from transformers import AutoConfig, AutoModelForSequenceClassification

        artifact_dir = Path(run.events[-1]["artifact_dir"])
        config = AutoConfig.from_pretrained(artifact_dir)
        assert [config.id2label[index] for index in range(len(LABELS))] == LABELS
        base = AutoModelForSequenceClassification.from_pretrained(model_dir, config=config)
        model = PeftModel.from_pretrained(base, artifact_dir)
        assert classify(model, artifact_dir) >= 0.75


class TestClassificationOnAnEncoder:
    @pytest.fixture(scope="class")
    def lora_run(self, tmp_path_factory, encoder_dir) -> InProcessRun:
        recipe = Recipe(type="lora", max_seq_length=64)
        return train_in_process(
            classification_spec(tmp_path_factory.mktemp("classify-encoder"), encoder_dir, recipe, 2e-2)
        )

    @pytest.fixture(scope="class")
    def head_only_run(self, tmp_path_factory, encoder_dir) -> InProcessRun:
        recipe = Recipe(type="freeze", trainable_layers=0, max_seq_length=64)
        return train_in_process(
            classification_spec(tmp_path_factory.mktemp("classify-head"), encoder_dir, recipe, 5e-2)
        )

    def test_lora_learns_the_labels(self, lora_run, encoder_dir):
        from peft import PeftModel
        from transformers import AutoConfig, AutoModelForSequenceClassification

        losses = lora_run.losses()
        assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses
        messages = [event["message"] for event in lora_run.of("message")]
        assert "padded batches: the model's attention is not causal (an encoder)" in messages
        artifact_dir = lora_run.outcome.artifact_dir
        base = AutoModelForSequenceClassification.from_pretrained(
            encoder_dir, config=AutoConfig.from_pretrained(artifact_dir)
        )
        assert classify(PeftModel.from_pretrained(base, artifact_dir), artifact_dir) >= 0.75

    def test_head_only_training_leaves_the_encoder_bit_identical(self, head_only_run, encoder_dir):
        from safetensors.torch import load_file
        from transformers import AutoModelForSequenceClassification

        outcome = head_only_run.outcome
        assert isinstance(outcome, TrainingOutcome) and outcome.labels == LABELS
        losses = head_only_run.losses()
        assert sum(losses[-4:]) / 4 < 0.75 * sum(losses[:4]) / 4, losses
        base = load_file(encoder_dir / "model.safetensors")
        trained = load_file(outcome.artifact_dir / "model.safetensors")
        frozen = [name for name in base if name.startswith(("embeddings.", "encoder."))]
        assert frozen
        for name in frozen:
            assert torch.equal(trained[f"bert.{name}"], base[name]), name
        model = AutoModelForSequenceClassification.from_pretrained(outcome.artifact_dir)
        assert model.config.id2label == dict(enumerate(LABELS))
        assert classify(model, outcome.artifact_dir) > 0.25

    def test_validation_label_outside_the_label_set_is_refused(self, tmp_path, encoder_dir):
        from transformers import AutoTokenizer

        from worker.training.methods.classification import prepare
        from worker.training.progress import ProgressWriter

        spec = classification_spec(tmp_path, encoder_dir, Recipe(type="lora"), 1e-2, n_valid=2)
        write_jsonl(Path(spec.validation_file or ""), [{"text": "a kiwi", "label": "fuzzy"}])

        with pytest.raises(DatasetError, match="labels not in the job's label set") as error:
            prepare(spec, AutoTokenizer.from_pretrained(encoder_dir), ProgressWriter(io.StringIO()))
        assert error.value.purpose == "validation"


@pytest.mark.parametrize(
    ("method", "recipe_type", "learning_rate"),
    [
        ("dpo", "qlora", 5e-3),
        ("dpo", "prompt_tuning", 5e-2),
        ("classification", "qlora", 1e-2),
        ("classification", "prefix_tuning", 3e-2),
    ],
)
def test_quantized_and_soft_prompt_recipes_train_with_every_method(
    tmp_path, model_dir, method, recipe_type, learning_rate
):
    spec = toy_spec(
        tmp_path,
        model_dir,
        n_train=16,
        n_epochs=3,
        learning_rate=learning_rate,
        method=method,
        recipe=Recipe(type=recipe_type, max_seq_length=64, num_virtual_tokens=8),
    )
    examples = toy_preference_examples(16) if method == "dpo" else toy_classification_examples(16)
    write_jsonl(Path(spec.training_file), examples)

    run = train_in_process(spec)

    losses = run.losses()
    assert losses[-1] < 0.7 * losses[0], losses
    assert isinstance(run.outcome, TrainingOutcome) and run.outcome.artifact_format == "peft"


def test_every_method_module_takes_what_the_run_hands_it() -> None:
    """run.py calls each method's prepare and make_trainer alike; a method whose signature drifted
    would fail only when a job of that method runs."""
    import inspect

    from catalog.methods import METHODS
    from worker.training.methods import get_method

    expected = {
        "prepare": ["spec", "tokenizer", "progress"],
        "make_trainer": ["spec", "model", "tokenizer", "data", "args", "callbacks", "progress"],
    }
    for name in METHODS:
        module = get_method(name)
        for function, parameters in expected.items():
            assert list(inspect.signature(getattr(module, function)).parameters) == parameters, (
                name,
                function,
            )
