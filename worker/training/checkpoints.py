"""Checkpoints of a run: loadable artifacts at epoch ends, resumable state, and stop-on-SIGTERM.

Two kinds of checkpoint, because they serve different readers:
  - `output_dir/checkpoints/step-N/`: at the end of every epoch, an artifact of the same form as the
    final one (PEFT adapter or model directory), which a user can download and load. Protocol line
    `checkpoint`, carrying the metrics that OpenAI's FineTuningJobCheckpoint shows.
  - `output_dir/trainer/checkpoint-N/`: the Trainer's own checkpoint (weights, optimizer, scheduler,
    RNG, trainer state; `resume_from_checkpoint` restores the data position from the step) plus our
    result-file rows, saved at every epoch end, every `checkpoint_every_steps` /
    `checkpoint_every_minutes`, and when the worker asks the run to stop. Only the newest two are
    kept (the Trainer's save_total_limit). Protocol line `resumable`.

SIGTERM (pause, or the worker shutting down) lets the current optimizer step finish, saves a
resumable checkpoint and ends the run with a `stopped` line: never a half-written checkpoint, and
never more than one step of work lost.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from worker.training import distributed
from worker.training.callbacks import ProgressCallback, StepMetrics
from worker.training.progress import Checkpoint, CheckpointMetrics, ProgressWriter, Resumable
from worker.training.spec import TrainingSpec

# Beside the Trainer's files in a resumable checkpoint: what the Trainer does not keep for us.
RUN_STATE_NAME = "tunery_state.json"


class ResumeError(ValueError):
    """`resume_from` names no resumable checkpoint of a Tunery run."""


class StopRequest:
    """Set by SIGTERM; read at the end of each optimizer step. The handler only flips a flag: writing
    a protocol line from inside a signal handler could interleave with a line being written."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def load_run_state(checkpoint_dir: Path) -> list[StepMetrics]:
    """The result-file rows saved in a resumable checkpoint (ResumeError when it is not one of ours)."""
    state_file = Path(checkpoint_dir) / RUN_STATE_NAME
    if not (Path(checkpoint_dir) / "trainer_state.json").is_file() or not state_file.is_file():
        raise ResumeError(f"resume_from {checkpoint_dir} is not a resumable checkpoint of a Tunery run")
    raw = json.loads(state_file.read_text())
    return [StepMetrics.from_dict(row) for row in raw["rows"]]


def resumed_step(checkpoint_dir: Path) -> int:
    return int(json.loads((Path(checkpoint_dir) / "trainer_state.json").read_text())["global_step"])


class CheckpointCallback(TrainerCallback):
    """Decides when the Trainer saves, adds our state to its checkpoints and reports them.

    Must be registered after the ProgressCallback: an epoch's evaluation has to reach the rows before
    the epoch-end checkpoint reads them.
    """

    def __init__(
        self,
        spec: TrainingSpec,
        writer: ProgressWriter,
        progress: ProgressCallback,
        stop: StopRequest,
        save_artifact: Callable[[Any, Path], Path],
    ):
        self.spec = spec
        self.writer = writer
        self.progress = progress
        self.stop = stop
        self.save_artifact = save_artifact
        self.stopped_at: int | None = None
        self.last_resumable: Path | None = None
        self._last_save = time.monotonic()
        self._stop_announced = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_save = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        epoch_end = _at_epoch_end(state)
        every_minutes = self.spec.checkpoint_every_minutes
        timed = bool(every_minutes and time.monotonic() - self._last_save >= every_minutes * 60)
        # Every rank of a distributed run must save and stop at the same step, or the others wait in
        # a collective forever: a signal or the clock seen by one rank counts for all.
        stop_requested, timed = distributed.agree(self.stop.requested, timed)
        if stop_requested:
            if not self._stop_announced:
                self.writer.message(
                    f"Stop requested: saving a resumable checkpoint at step {state.global_step}"
                )
                self._stop_announced = True
            self.stopped_at = state.global_step
            control.should_training_stop = True
            # At an epoch's last step, the epoch end still evaluates and saves (below), so that the
            # resumed run starts cleanly in the next epoch with nothing of this one left undone.
            control.should_save = not epoch_end
            return control
        if epoch_end:
            return control  # the epoch-end save follows in on_epoch_end; never save one step twice
        every_steps = self.spec.checkpoint_every_steps
        if (every_steps and state.global_step % every_steps == 0) or timed:
            control.should_save = True
            self._last_save = time.monotonic()
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None and not _at_epoch_end(state):
            # Stopped mid-epoch: the resumable checkpoint is already saved, and this is no epoch end.
            control.should_save = False
            control.should_evaluate = False
        return control

    def on_save(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            if _at_epoch_end(state) and model is not None:
                # An fsdp run's ranks all send their shards of the epoch's artifact to rank 0.
                self.save_artifact(model, self.spec.checkpoints_dir / f"step-{state.global_step}")
            return control
        step = state.global_step
        checkpoint_dir = Path(args.output_dir) / f"checkpoint-{step}"
        rows = self.progress.all_rows()
        (checkpoint_dir / RUN_STATE_NAME).write_text(
            json.dumps({"rows": [row.to_dict() for row in rows]}, indent=1) + "\n"
        )
        self._last_save = time.monotonic()
        self.last_resumable = checkpoint_dir
        self.writer.emit(Resumable(step=step, path=str(checkpoint_dir)))
        if _at_epoch_end(state) and model is not None:
            self._export_epoch_checkpoint(model, step, round(state.epoch or 0), rows)
        return control

    def _export_epoch_checkpoint(self, model: Any, step: int, epoch: int, rows: list[StepMetrics]) -> None:
        artifact_dir = self.save_artifact(model, self.spec.checkpoints_dir / f"step-{step}")
        row = next((row for row in reversed(rows) if row.step == step), None)
        self.writer.emit(
            Checkpoint(
                step=step,
                epoch=epoch,
                artifact_dir=str(artifact_dir),
                metrics=CheckpointMetrics(
                    step=step,
                    train_loss=row.train_loss if row else None,
                    train_mean_token_accuracy=row.train_accuracy if row else None,
                    valid_loss=row.valid_loss if row else None,
                    valid_mean_token_accuracy=row.valid_mean_token_accuracy if row else None,
                    # The epoch-end evaluation runs over the whole validation set: it is the "full" one.
                    full_valid_loss=row.valid_loss if row else None,
                    full_valid_mean_token_accuracy=row.valid_mean_token_accuracy if row else None,
                    train_reward_mean=row.train_reward_mean if row else None,
                    train_reward_std=row.train_reward_std if row else None,
                    valid_reward_mean=row.valid_reward_mean if row else None,
                ),
            )
        )


def _at_epoch_end(state: Any) -> bool:
    # The Trainer sets state.epoch = epoch + (step + 1) / steps_in_epoch after each step, so a whole
    # number is exactly the last step of an epoch.
    epoch = state.epoch or 0.0
    return epoch > 0 and abs(epoch - round(epoch)) < 1e-6
