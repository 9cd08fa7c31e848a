"""Trainer callbacks: the Trainer's logs -> protocol "metrics" lines and the rows of the result file."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from transformers import TrainerCallback

from worker.training.base_model import count_parameters
from worker.training.progress import Metrics, ProgressWriter, Started


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
    train_reward_mean: float | None = None
    train_reward_std: float | None = None
    valid_reward_mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepMetrics:
        return cls(**raw)


class ProgressCallback(TrainerCallback):
    """Turns the Trainer's logs into protocol lines and keeps the per-step rows for the result file.

    TRL logs `loss` and `mean_token_accuracy` at every step (logging_steps=1), and `eval_loss` and
    `eval_mean_token_accuracy` after an evaluation, which the Trainer runs right after the log of the
    epoch's last step. So with a validation set, a step's line waits until it is known whether an
    evaluation belongs to it: until the evaluation arrives, the next step begins or training ends.

    `accuracy_key` names the logged value that fills the accuracy columns: the method's own notion of
    it (token accuracy for supervised, preference accuracy for DPO, label accuracy for classification).
    """

    def __init__(
        self,
        writer: ProgressWriter,
        n_examples: int,
        n_epochs: int,
        has_validation: bool,
        accuracy_key: str = "mean_token_accuracy",
    ):
        self.writer = writer
        self.n_examples = n_examples
        self.n_epochs = n_epochs
        self.has_validation = has_validation
        self.accuracy_key = accuracy_key
        self.rows: list[StepMetrics] = []
        self._pending: StepMetrics | None = None
        self._total_steps = 0
        # step -> (tokens/s, GPU bytes): for the metrics lines only, not the result file's columns.
        self._speed: dict[int, tuple[float | None, int | None]] = {}
        self._last_tokens: tuple[float, int] | None = None  # (monotonic time, tokens seen) at the last log

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._total_steps = state.max_steps
        self._last_tokens = (time.monotonic(), state.num_input_tokens_seen)
        if not state.is_world_process_zero:  # under torchrun, one process speaks for the run
            return
        trainable, total = count_parameters(model) if model is not None else (0, 0)
        self.writer.emit(
            Started(
                total_steps=state.max_steps,
                n_examples=self.n_examples,
                n_epochs=self.n_epochs,
                trainable_params=trainable,
                total_params=total,
            )
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
                row.valid_mean_token_accuracy = logs.get(f"eval_{self.accuracy_key}")
                row.valid_reward_mean = logs.get("eval_reward")
            self._flush()
        elif "loss" in logs:  # a training step; the summary at the end has "train_loss" instead
            self._flush()
            self._pending = StepMetrics(
                step=state.global_step,
                epoch=float(logs.get("epoch", state.epoch or 0.0)),
                train_loss=logs["loss"],
                train_accuracy=logs.get(self.accuracy_key, 0.0),
                learning_rate=logs.get("learning_rate", 0.0),
                # GRPO logs the step's rewards as "reward" and "reward_std"; other methods have none.
                train_reward_mean=logs.get("reward"),
                train_reward_std=logs.get("reward_std"),
            )
            self._speed[state.global_step] = (self._tokens_per_second(logs), _gpu_memory_bytes())
            if not self.has_validation:
                self._flush()

    def all_rows(self) -> list[StepMetrics]:
        """Every step's row so far, the one still waiting for a possible evaluation included."""
        return self.rows + ([self._pending] if self._pending else [])

    def restore(self, rows: list[StepMetrics]) -> None:
        """Take over the rows of the run being resumed: they are in the result file, not re-emitted."""
        self.rows = list(rows)

    def on_step_begin(self, args, state, control, **kwargs):
        self._flush()

    def on_train_end(self, args, state, control, **kwargs):
        self._flush()

    def _tokens_per_second(self, logs: dict[str, Any]) -> float | None:
        seen, now = logs.get("num_input_tokens_seen"), time.monotonic()
        if seen is None or self._last_tokens is None:
            return None
        since, before = self._last_tokens
        self._last_tokens = (now, int(seen))
        return (int(seen) - before) / (now - since) if now > since else None

    def _flush(self) -> None:
        if self._pending is None:
            return
        row, self._pending = self._pending, None
        tokens_per_second, gpu_memory_bytes = self._speed.pop(row.step, (None, None))
        self.rows.append(row)
        self.writer.emit(
            Metrics(
                step=row.step,
                total_steps=self._total_steps,
                epoch=row.epoch,
                train_loss=row.train_loss,
                train_mean_token_accuracy=row.train_accuracy,
                learning_rate=row.learning_rate,
                valid_loss=row.valid_loss,
                valid_mean_token_accuracy=row.valid_mean_token_accuracy,
                train_reward_mean=row.train_reward_mean,
                train_reward_std=row.train_reward_std,
                valid_reward_mean=row.valid_reward_mean,
                tokens_per_second=tokens_per_second,
                gpu_memory_bytes=gpu_memory_bytes,
            )
        )


def _gpu_memory_bytes() -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
