"""The trainer as the worker runs it: `python -m worker.training spec.json` in a child process.

A tiny random Llama learns the toy fruit-colour table for real; the tests read only what the worker
would read: the JSON lines on stdout, the exit status and the files left in output_dir.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

# Before transformers is imported by a test: the hub is never needed, and must never be asked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.tiny_model import toy_chat_examples, write_jsonl
from tests.training.trainer_runs import TrainerRun, run_trainer, toy_spec
from worker.training.spec import TrainingSpec

RESULT_HEADER = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]


def write_one_epoch_spec(directory: Path, model_dir: Path, training_file: Path) -> TrainingSpec:
    """A spec for a run expected to fail on its data, written to directory/spec.json."""
    spec = TrainingSpec(
        job_id="ftjob-failing",
        base_model_dir=str(model_dir),
        training_file=str(training_file),
        output_dir=str(directory / "out"),
        n_epochs=1,
        batch_size=1,
        learning_rate=1e-3,
        seed=0,
    )
    spec.write(directory / "spec.json")
    return spec


def train(directory: Path, model_dir: Path, n_train: int, n_epochs: int, n_valid: int = 0) -> TrainerRun:
    spec = toy_spec(directory, model_dir, n_train, n_epochs, n_valid)
    run = run_trainer(directory / "spec.json")
    assert run.returncode == 0, run.stderr[-3000:]
    run.spec = spec
    return run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, model_dir) -> TrainerRun:
    # 16 examples in batches of 4 for 3 epochs: 12 optimizer steps.
    return train(tmp_path_factory.mktemp("run"), model_dir, n_train=16, n_epochs=3)


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory, model_dir) -> TrainerRun:
    # 8 examples in batches of 4 for 2 epochs: steps 1-4, epochs end on steps 2 and 4.
    return train(tmp_path_factory.mktemp("validated-run"), model_dir, n_train=8, n_epochs=2, n_valid=4)


class TestProtocol:
    def test_started_then_one_metrics_line_per_step_then_completed(self, finished_run):
        checkpoint_kinds = ("message", "resumable", "checkpoint")
        kinds = [event["event"] for event in finished_run.events if event["event"] not in checkpoint_kinds]

        assert kinds == ["started"] + ["metrics"] * 12 + ["completed"]
        started = finished_run.of("started")[0]
        assert started["total_steps"] == 12
        assert started["n_examples"] == 16
        assert started["n_epochs"] == 3
        assert 0 < started["trainable_params"] < started["total_params"]
        metrics = finished_run.of("metrics")
        assert [line["step"] for line in metrics] == list(range(1, 13))
        assert metrics[-1]["epoch"] == pytest.approx(3.0)
        assert all(line["total_steps"] == 12 and line["learning_rate"] > 0 for line in metrics)
        assert all(0.0 <= line["train_mean_token_accuracy"] <= 1.0 for line in metrics)

    def test_every_step_reports_its_training_speed(self, finished_run):
        metrics = finished_run.of("metrics")
        assert all(line["tokens_per_second"] > 0 for line in metrics), metrics
        assert all(line["gpu_memory_bytes"] is None for line in metrics)  # a CPU run

    def test_completed_reports_billed_tokens_and_artifacts(self, finished_run, model_dir):
        from transformers import AutoTokenizer

        from worker.training.data import tokenize_example

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        tokens_per_epoch = sum(len(tokenize_example(tokenizer, ex).input_ids) for ex in toy_chat_examples(16))

        completed = finished_run.events[-1]
        assert completed["event"] == "completed"
        assert completed["trained_tokens"] == tokens_per_epoch * 3
        assert completed["artifact_dir"] == str(finished_run.spec.artifact_dir)
        assert completed["result_file"] == str(finished_run.spec.result_file)

    def test_loss_falls_from_first_to_last_epoch(self, finished_run):
        losses = [line["train_loss"] for line in finished_run.of("metrics")]
        first_epoch, last_epoch = losses[:4], losses[-4:]

        assert sum(last_epoch) / 4 < 0.75 * sum(first_epoch) / 4, losses

    def test_missing_training_file_fails_with_its_code(self, tmp_path, model_dir):
        spec = write_one_epoch_spec(tmp_path, model_dir, tmp_path / "absent.jsonl")

        run = run_trainer(tmp_path / "spec.json")

        assert run.returncode == 1
        assert run.events == [
            {
                "event": "failed",
                "code": "invalid_training_file",
                "message": f"training file not found: {spec.training_file}",
            }
        ]

    def test_invalid_spec_fails_with_its_code(self, tmp_path):
        (tmp_path / "spec.json").write_text(json.dumps({"job_id": "ftjob-bad", "n_epochs": 0}))

        run = run_trainer(tmp_path / "spec.json")

        assert run.returncode == 1
        assert [(event["event"], event["code"]) for event in run.events] == [("failed", "invalid_spec")]

    def test_bad_line_in_training_file_fails_naming_the_line(self, tmp_path, model_dir):
        training_file = write_jsonl(tmp_path / "train.jsonl", toy_chat_examples(2))
        with open(training_file, "a") as lines:
            lines.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
        write_one_epoch_spec(tmp_path, model_dir, training_file)

        run = run_trainer(tmp_path / "spec.json")

        assert run.returncode == 1
        failed = run.events[-1]
        assert failed["event"] == "failed"
        assert failed["code"] == "invalid_training_file"
        assert failed["message"].startswith("line 3: messages has no assistant message to learn from")


class TestArtifacts:
    def test_adapter_loads_on_the_base_model_and_generates(self, finished_run, model_dir):
        import torch
        from peft import PeftModel
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        adapter_dir = finished_run.spec.adapter_dir
        assert (adapter_dir / "adapter_config.json").is_file()
        assert (adapter_dir / "adapter_model.safetensors").is_file()
        record = json.loads((adapter_dir / "tunery.json").read_text())
        assert record["job_id"] == "ftjob-test"
        assert record["base_model_dir"] == str(model_dir)
        # LoRA's B matrices start at zero: non-zero ones prove the adapter was trained.
        weights = load_file(adapter_dir / "adapter_model.safetensors")
        lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
        assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)

        tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        model = PeftModel.from_pretrained(base, adapter_dir)
        prompt = toy_chat_examples(1)[0]["messages"][:2]
        inputs = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        assert output.shape[1] > inputs["input_ids"].shape[1]

    def test_result_file_has_a_row_per_step_and_no_validation_cells(self, finished_run):
        with open(finished_run.spec.result_file, newline="") as result_file:
            header = next(csv.reader(result_file))
        rows = finished_run.result_rows()

        assert header == RESULT_HEADER
        assert [int(row["step"]) for row in rows] == list(range(1, 13))
        metrics = finished_run.of("metrics")
        for row, line in zip(rows, metrics, strict=True):
            assert float(row["train_loss"]) == pytest.approx(line["train_loss"], abs=1e-5)
            assert float(row["train_accuracy"]) == pytest.approx(line["train_mean_token_accuracy"], abs=1e-5)
            assert row["valid_loss"] == row["valid_mean_token_accuracy"] == ""

    def test_validation_is_reported_on_epoch_end_steps(self, validated_run):
        rows = validated_run.result_rows()
        metrics = validated_run.of("metrics")

        assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
        evaluated = [int(row["step"]) for row in rows if row["valid_loss"] != ""]
        assert evaluated == [2, 4]
        assert all(row["valid_mean_token_accuracy"] != "" for row in rows if row["valid_loss"] != "")
        assert [line["step"] for line in metrics if line["valid_loss"] is not None] == [2, 4]
        assert float(rows[3]["valid_loss"]) == pytest.approx(metrics[3]["valid_loss"], abs=1e-5)
