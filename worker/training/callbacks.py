"""Trainer callbacks: the Trainer's logs -> protocol "metrics" lines and the rows of the result file."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import TrainerCallback

from worker.training.progress import ProgressWriter


@dataclass
class StepMetrics:
    """One optimizer step's row of the result file; valid_* only on steps followed by an evaluation."""

    step: int
    epoch: float
    train_loss: float
    train_accuracy: float
    learning_rate: float
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


class ProgressCallback(TrainerCallback):
    """Turns the Trainer's logs into protocol lines and keeps the per-step rows for the result file.

    TRL logs `loss` and `mean_token_accuracy` at every step (logging_steps=1), and `eval_loss` and
    `eval_mean_token_accuracy` after an evaluation, which the Trainer runs right after the log of the
    epoch's last step. So with a validation set, a step's line waits until it is known whether an
    evaluation belongs to it: until the evaluation arrives, the next step begins or training ends.
    """

    def __init__(self, writer: ProgressWriter, n_examples: int, n_epochs: int, has_validation: bool):
        self.writer = writer
        self.n_examples = n_examples
        self.n_epochs = n_epochs
        self.has_validation = has_validation
        self.rows: list[StepMetrics] = []
        self._pending: StepMetrics | None = None
        self._total_steps = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._total_steps = state.max_steps
        if not state.is_world_process_zero:  # under torchrun, one process speaks for the run
            return
        parameters = list(model.parameters()) if model is not None else []
        self.writer.emit(
            "started",
            total_steps=state.max_steps,
            n_examples=self.n_examples,
            n_epochs=self.n_epochs,
            trainable_params=sum(p.numel() for p in parameters if p.requires_grad),
            total_params=sum(p.numel() for p in parameters),
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        if "eval_loss" in logs:
            # An evaluation belongs to the step whose log came just before it.
            row = self._pending or (self.rows[-1] if self.rows else None)
            if row is not None:
                row.valid_loss = logs["eval_loss"]
                row.valid_mean_token_accuracy = logs.get("eval_mean_token_accuracy")
            self._flush()
        elif "loss" in logs:  # a training step; the summary at the end has "train_loss" instead
            self._flush()
            self._pending = StepMetrics(
                step=state.global_step,
                epoch=float(logs.get("epoch", state.epoch or 0.0)),
                train_loss=logs["loss"],
                train_accuracy=logs.get("mean_token_accuracy", 0.0),
                learning_rate=logs.get("learning_rate", 0.0),
            )
            if not self.has_validation:
                self._flush()

    def on_step_begin(self, args, state, control, **kwargs):
        self._flush()

    def on_train_end(self, args, state, control, **kwargs):
        self._flush()

    def _flush(self) -> None:
        if self._pending is None:
            return
        row, self._pending = self._pending, None
        self.rows.append(row)
        self.writer.emit(
            "metrics",
            step=row.step,
            total_steps=self._total_steps,
            epoch=row.epoch,
            train_loss=row.train_loss,
            train_mean_token_accuracy=row.train_accuracy,
            learning_rate=row.learning_rate,
            valid_loss=row.valid_loss,
            valid_mean_token_accuracy=row.valid_mean_token_accuracy,
        )
