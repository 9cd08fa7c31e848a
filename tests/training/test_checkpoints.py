"""Checkpoints, stop on SIGTERM and resume, through the trainer process as the worker drives it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.tiny_model import toy_chat_examples
from tests.training.trainer_runs import (
    TrainerRun,
    run_trainer,
    run_trainer_and_stop,
    toy_spec,
    train_in_process,
    train_to_completion,
)

# 16 examples in batches of 4 for 3 epochs: 12 steps, epochs ending on steps 4, 8 and 12.
N_TRAIN, N_EPOCHS = 16, 3


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, model_dir) -> TrainerRun:
    directory = tmp_path_factory.mktemp("clean")
    return train_to_completion(toy_spec(directory, model_dir, N_TRAIN, N_EPOCHS), directory)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, model_dir) -> TrainerRun:
    directory = tmp_path_factory.mktemp("stopped")
    spec = toy_spec(directory, model_dir, N_TRAIN, N_EPOCHS, checkpoint_every_steps=3)
    run = run_trainer_and_stop(directory / "spec.json", at_step=5)
    run.spec = spec
    return run


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, model_dir, stopped_run) -> TrainerRun:
    stopped = stopped_run.of("stopped")[0]
    directory = Path(stopped_run.spec.output_dir).parent
    spec = toy_spec(
        directory, model_dir, N_TRAIN, N_EPOCHS, checkpoint_every_steps=3, resume_from=stopped["resume_from"]
    )
    return train_to_completion(spec, directory)


class TestEpochCheckpoints:
    def test_every_epoch_end_leaves_a_loadable_adapter(self, clean_run, model_dir):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        checkpoints = clean_run.of("checkpoint")

        assert [(line["step"], line["epoch"]) for line in checkpoints] == [(4, 1), (8, 2), (12, 3)]
        metrics = {line["step"]: line for line in clean_run.of("metrics")}
        for line in checkpoints:
            assert line["metrics"]["step"] == line["step"]
            assert line["metrics"]["train_loss"] == pytest.approx(metrics[line["step"]]["train_loss"])
            assert line["metrics"]["valid_loss"] is None and line["metrics"]["full_valid_loss"] is None
            assert Path(line["artifact_dir"]) == clean_run.spec.checkpoints_dir / f"step-{line['step']}"
        first = Path(checkpoints[0]["artifact_dir"])
        assert json.loads((first / "tunery.json").read_text())["artifact_format"] == "peft"
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), first)
        tokenizer = AutoTokenizer.from_pretrained(first)
        inputs = tokenizer.apply_chat_template(
            toy_chat_examples(1)[0]["messages"][:2], add_generation_prompt=True, return_tensors="pt"
        )
        with torch.no_grad():
            assert model.generate(**inputs, max_new_tokens=2, do_sample=False).shape[1] > 0

    def test_each_epoch_end_is_resumable_and_nothing_is_left_after_completion(self, clean_run):
        assert [line["step"] for line in clean_run.of("resumable")] == [4, 8, 12]
        # Resumable state is only for an unfinished run.
        assert not clean_run.spec.trainer_dir.exists()

    def test_completed_names_the_artifact_and_its_format(self, clean_run):
        completed = clean_run.events[-1]
        assert completed["artifact_dir"] == str(clean_run.spec.artifact_dir)
        assert completed["artifact_format"] == "peft"
        assert completed["labels"] is None

    def test_with_validation_the_epoch_checkpoint_carries_the_full_validation(self, tmp_path, model_dir):
        spec = toy_spec(tmp_path, model_dir, n_train=8, n_epochs=2, n_valid=4)
        run = train_to_completion(spec, tmp_path)

        checkpoints = run.of("checkpoint")
        metrics = {line["step"]: line for line in run.of("metrics")}
        assert [line["step"] for line in checkpoints] == [2, 4]
        for line in checkpoints:
            assert line["metrics"]["full_valid_loss"] == pytest.approx(metrics[line["step"]]["valid_loss"])
            assert line["metrics"]["valid_mean_token_accuracy"] is not None


class TestStopAndResume:
    def test_sigterm_saves_a_resumable_checkpoint_and_exits_cleanly(self, stopped_run):
        assert stopped_run.returncode == 0, stopped_run.stderr[-3000:]
        stopped = stopped_run.events[-1]
        assert stopped["event"] == "stopped"
        assert 5 <= stopped["step"] < 12
        assert not stopped_run.of("completed")
        assert Path(stopped["resume_from"], "trainer_state.json").is_file()
        assert stopped_run.of("resumable")[-1] == {
            "event": "resumable",
            "step": stopped["step"],
            "path": stopped["resume_from"],
        }
        # Steps 3 and 4 (every 3 steps, and the epoch end) were saved before; only two are kept.
        assert [line["step"] for line in stopped_run.of("resumable")][:2] == [3, 4]
        assert len(list(stopped_run.spec.trainer_dir.glob("checkpoint-*"))) <= 2

    def test_resumed_run_continues_and_ends_like_an_uninterrupted_one(
        self, stopped_run, resumed_run, clean_run
    ):
        stopped_step = stopped_run.of("stopped")[0]["step"]
        messages = [line["message"] for line in resumed_run.of("message")]

        assert f"Resumed from checkpoint at step {stopped_step}" in messages
        assert [line["step"] for line in resumed_run.of("metrics")] == list(range(stopped_step + 1, 13))
        assert [row["step"] for row in resumed_run.result_rows()] == [
            row["step"] for row in clean_run.result_rows()
        ]
        # The first run's rows come back as they were, and the last losses match the clean run's.
        first_losses = [line["train_loss"] for line in stopped_run.of("metrics")]
        resumed_losses = [float(row["train_loss"]) for row in resumed_run.result_rows()]
        clean_losses = [float(row["train_loss"]) for row in clean_run.result_rows()]
        assert resumed_losses[: len(first_losses)] == pytest.approx(first_losses, abs=1e-5)
        assert resumed_losses[-1] == pytest.approx(clean_losses[-1], abs=1e-3)
        assert resumed_run.events[-1]["trained_tokens"] == clean_run.events[-1]["trained_tokens"]

    def test_resumed_artifact_matches_the_clean_one(self, resumed_run, clean_run):
        from safetensors.torch import load_file

        resumed = load_file(resumed_run.spec.artifact_dir / "adapter_model.safetensors")
        clean = load_file(clean_run.spec.artifact_dir / "adapter_model.safetensors")
        assert resumed.keys() == clean.keys()
        for name in clean:
            assert (resumed[name] - clean[name]).abs().max() < 1e-3, name

    def test_checkpoint_every_minutes_saves_between_epoch_ends(self, tmp_path, model_dir):
        # A tiny interval: every step is past it, so every step saves.
        spec = toy_spec(tmp_path, model_dir, n_train=8, n_epochs=2, checkpoint_every_minutes=1e-6)

        run = train_in_process(spec)

        assert [line["step"] for line in run.of("resumable")] == [1, 2, 3, 4]
        assert [line["step"] for line in run.of("checkpoint")] == [2, 4]

    def test_resume_from_a_directory_that_is_no_checkpoint_fails_with_its_code(self, tmp_path, model_dir):
        toy_spec(tmp_path, model_dir, n_train=4, n_epochs=1, resume_from=str(tmp_path))

        run = run_trainer(tmp_path / "spec.json")

        assert run.returncode == 1
        assert run.events[-1]["code"] == "invalid_resume_checkpoint"


class TestWhenTheCallbackSaves:
    """The save decisions of CheckpointCallback, on the Trainer's own state and control objects."""

    @staticmethod
    def callback(tmp_path, stop_requested: bool, **spec_fields):
        import io

        from worker.training.callbacks import ProgressCallback
        from worker.training.checkpoints import CheckpointCallback, StopRequest
        from worker.training.progress import ProgressWriter

        spec = toy_spec(tmp_path, tmp_path, n_train=8, n_epochs=2, **spec_fields)
        writer = ProgressWriter(io.StringIO())
        stop = StopRequest()
        stop.requested = stop_requested
        progress = ProgressCallback(writer, n_examples=8, n_epochs=2, has_validation=False)
        return CheckpointCallback(spec, writer, progress, stop, save_artifact=lambda model, path: path)

    @staticmethod
    def state(step: int, steps_per_epoch: int = 4):
        from transformers import TrainerState

        return TrainerState(global_step=step, epoch=step / steps_per_epoch, max_steps=8)

    def test_stop_mid_epoch_saves_now_and_skips_the_epoch_end(self, tmp_path):
        from transformers import TrainerControl, TrainingArguments

        callback = self.callback(tmp_path, stop_requested=True)
        control = TrainerControl()
        args = TrainingArguments(output_dir=str(tmp_path / "trainer"), report_to=[])

        callback.on_step_end(args, self.state(3), control)
        assert control.should_save and control.should_training_stop
        control.should_save = control.should_evaluate = True  # as the Trainer's DefaultFlowCallback sets them
        callback.on_epoch_end(args, self.state(3), control)
        assert not control.should_save and not control.should_evaluate
        assert callback.stopped_at == 3

    def test_stop_on_an_epoch_last_step_lets_the_epoch_end_evaluate_and_save(self, tmp_path):
        from transformers import TrainerControl, TrainingArguments

        callback = self.callback(tmp_path, stop_requested=True)
        control = TrainerControl()
        args = TrainingArguments(output_dir=str(tmp_path / "trainer"), report_to=[])

        callback.on_step_end(args, self.state(4), control)
        assert control.should_training_stop and not control.should_save
        control.should_save = control.should_evaluate = True
        callback.on_epoch_end(args, self.state(4), control)
        assert control.should_save and control.should_evaluate

    def test_every_n_steps_saves_between_epoch_ends_but_not_on_them(self, tmp_path):
        from transformers import TrainerControl, TrainingArguments

        callback = self.callback(tmp_path, stop_requested=False, checkpoint_every_steps=2)
        args = TrainingArguments(output_dir=str(tmp_path / "trainer"), report_to=[])
        saved = []
        for step in range(1, 9):
            control = TrainerControl()
            callback.on_step_end(args, self.state(step), control)
            saved.append(control.should_save)

        # Steps 4 and 8 end epochs: the epoch-end save takes them, once.
        assert [step for step, save in enumerate(saved, start=1) if save] == [2, 6]
