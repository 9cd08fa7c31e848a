"""The trainer's progress protocol: what the trainer writes, the worker reads back as the same event,
and a line that is no event is refused with a reason, never taken for something else."""

from __future__ import annotations

import io
import json

import pytest

from worker.training.progress import (
    Checkpoint,
    CheckpointMetrics,
    Completed,
    Failed,
    Message,
    Metrics,
    ProgressWriter,
    ProtocolError,
    Resumable,
    Started,
    Stopped,
    TrainerEvent,
    parse_line,
)

EVERY_EVENT: list[TrainerEvent] = [
    Message(message="Resumed from checkpoint at step 4", level="warn"),
    Started(total_steps=12, n_examples=16, n_epochs=3, trainable_params=10, total_params=100),
    Metrics(
        step=3,
        total_steps=12,
        epoch=0.75,
        train_loss=1.5,
        train_mean_token_accuracy=0.5,
        learning_rate=1e-3,
        valid_loss=None,
        valid_mean_token_accuracy=None,
    ),
    Checkpoint(
        step=4,
        epoch=1,
        artifact_dir="/out/checkpoints/step-4",
        metrics=CheckpointMetrics(step=4, train_loss=1.0),
    ),
    Resumable(step=4, path="/out/trainer/checkpoint-4"),
    Stopped(step=5, resume_from=None),
    Completed(
        trained_tokens=900, artifact_dir="/out/adapter", artifact_format="model", result_file="/out/r.csv"
    ),
    Failed(code="invalid_training_file", message="line 3: no assistant message"),
]


def written(event: TrainerEvent) -> str:
    stream = io.StringIO()
    ProgressWriter(stream).emit(event)
    return stream.getvalue()


class TestRoundTrip:
    @pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda event: event.kind)
    def test_what_the_trainer_writes_the_worker_reads_back(self, event: TrainerEvent) -> None:
        line = written(event)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line)["event"] == event.kind
        assert parse_line(line) == event

    def test_a_diverged_loss_is_written_as_null(self) -> None:
        metrics = Metrics(
            step=1,
            total_steps=2,
            epoch=0.5,
            train_loss=float("nan"),
            train_mean_token_accuracy=0.0,
            learning_rate=0.1,
        )
        line = written(metrics)
        assert json.loads(line)["train_loss"] is None
        assert parse_line(line).train_loss is None  # type: ignore[union-attr]


class TestRefused:
    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            ("Loading checkpoint shards: 100%", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            ('{"step": 1}', "unknown event None"),
            ('{"event": "progress", "step": 1}', "unknown event 'progress'"),
            ('{"event": "resumable", "step": 4}', "resumable: missing field path"),
            (
                '{"event": "resumable", "step": 4, "path": "p", "adapter_dir": "a"}',
                "unknown field(s) adapter_dir",
            ),
            ('{"event": "resumable", "step": "4", "path": "p"}', "resumable.step: '4' is not int"),
            ('{"event": "stopped", "step": true, "resume_from": null}', "stopped.step: True is not int"),
            ('{"event": "message", "message": "m", "level": "debug"}', "message.level: 'debug' is not"),
            (
                '{"event": "checkpoint", "step": 1, "epoch": 1, "artifact_dir": "a", "metrics": {"stp": 1}}',
                "checkpoint.metrics: unknown field(s) stp",
            ),
        ],
    )
    def test_a_line_that_is_no_event_is_refused_saying_why(self, line: str, problem: str) -> None:
        with pytest.raises(ProtocolError) as refused:
            parse_line(line)
        assert problem in str(refused.value)


def test_the_protocol_loads_without_torch() -> None:
    """The trainer speaks (and fails) before torch loads: the protocol must not pull it in."""
    import subprocess
    import sys

    code = (
        "import sys, worker.training.progress; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["False", "False"]
