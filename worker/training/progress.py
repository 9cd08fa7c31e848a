"""The JSON-lines progress protocol of the trainer process: the only thing it writes to stdout.

The trainer's stdout carries nothing but protocol lines, one JSON object each, flushed at once, so
that the worker can parse every line it reads. Everything else that libraries print goes to stderr.

Each kind of line is one dataclass below, and that class is the whole definition: the trainer writes
lines only through `ProgressWriter.emit(event)`, and the worker reads them only through `parse_line`,
which refuses a line whose kind, fields or types differ from the class. A line looks like
`{"event": "metrics", "step": 3, ...}`: the kind, then the fields of its class.

Floats that are not finite (a diverged loss) are written as null: JSON has no NaN. That is why every
float field may be None.
This module imports nothing heavy, so that the process can speak (and fail) before torch loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import types
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TextIO, Union, get_args, get_origin, get_type_hints

ArtifactFormat = Literal["peft", "model"]
"""peft: a PEFT adapter directory; model: a whole model directory (see artifacts.py)."""


@dataclass(frozen=True)
class Message:
    """Something for the job's events, in the user's words."""

    kind: ClassVar[str] = "message"
    message: str
    level: Literal["info", "warn"] = "info"


@dataclass(frozen=True)
class Started:
    """The model is built and the first step is about to run."""

    kind: ClassVar[str] = "started"
    total_steps: int
    n_examples: int
    n_epochs: int
    trainable_params: int
    total_params: int


@dataclass(frozen=True)
class Metrics:
    """One optimizer step; valid_* only on steps followed by an evaluation."""

    kind: ClassVar[str] = "metrics"
    step: int
    total_steps: int
    epoch: float | None
    train_loss: float | None
    train_mean_token_accuracy: float | None
    learning_rate: float | None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    # Reinforcement: the mean and spread of the step's rewards, and the validation prompts' mean.
    train_reward_mean: float | None = None
    train_reward_std: float | None = None
    valid_reward_mean: float | None = None
    # Training tokens (padding left out) per second since the previous step, and on a GPU the peak
    # memory this process has allocated: what the metrics endpoint and the dashboard show.
    tokens_per_second: float | None = None
    gpu_memory_bytes: int | None = None


@dataclass(frozen=True)
class CheckpointMetrics:
    """What OpenAI's FineTuningJobCheckpoint shows as its `metrics`, field for field."""

    step: int
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    # Reinforcement: the step's rewards, as its metrics event has them (Tunery's addition).
    train_reward_mean: float | None = None
    train_reward_std: float | None = None
    valid_reward_mean: float | None = None


@dataclass(frozen=True)
class Checkpoint:
    """Each epoch end: a loadable artifact of the same form as the final one, in `artifact_dir`.

    The trainer never touches `artifact_dir` again, so the worker may move it away."""

    kind: ClassVar[str] = "checkpoint"
    step: int
    epoch: int
    artifact_dir: str
    metrics: CheckpointMetrics


@dataclass(frozen=True)
class Resumable:
    """A checkpoint that `resume_from` accepts."""

    kind: ClassVar[str] = "resumable"
    step: int
    path: str


@dataclass(frozen=True)
class Stopped:
    """The run stopped after SIGTERM (exit status 0); `resume_from` continues it."""

    kind: ClassVar[str] = "stopped"
    step: int
    resume_from: str | None


@dataclass(frozen=True)
class Completed:
    """The run finished: the artifact, its form and the result file."""

    kind: ClassVar[str] = "completed"
    trained_tokens: int
    artifact_dir: str
    artifact_format: ArtifactFormat
    result_file: str
    labels: list[str] | None = None
    """Classification: id i is labels[i]."""


@dataclass(frozen=True)
class Failed:
    """The run failed (exit status 1); `code` is one a program can match."""

    kind: ClassVar[str] = "failed"
    code: str
    message: str


TrainerEvent = Message | Started | Metrics | Checkpoint | Resumable | Stopped | Completed | Failed
EVENT_TYPES: dict[str, type[Any]] = {
    cls.kind: cls for cls in (Message, Started, Metrics, Checkpoint, Resumable, Stopped, Completed, Failed)
}
FINAL_EVENTS = (Completed, Failed, Stopped)
"""The kinds that end a run: the last line a trainer writes."""


class ProtocolError(ValueError):
    """A line that is not one of the protocol's events; the message says what is wrong with it."""


def to_line(event: TrainerEvent) -> str:
    return json.dumps({"event": event.kind, **_finite(dataclasses.asdict(event))})


def parse_line(line: str | bytes) -> TrainerEvent:
    """The event a protocol line carries (ProtocolError when it is not one)."""
    try:
        raw = json.loads(line)
    except ValueError:
        raise ProtocolError("not JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("not a JSON object")
    fields = dict(raw)
    kind = fields.pop("event", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event {kind!r}")
    event: TrainerEvent = _build(cls, fields, where=kind)
    return event


class ProgressWriter:
    """Writes protocol lines to a private stream."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def emit(self, event: TrainerEvent) -> None:
        self._stream.write(to_line(event) + "\n")
        self._stream.flush()

    def message(self, text: str, level: Literal["info", "warn"] = "info") -> None:
        self.emit(Message(message=text, level=level))

    def failed(self, code: str, message: str) -> None:
        self.emit(Failed(code=code, message=message))


def take_over_stdout() -> ProgressWriter:
    """Keep the real stdout for the protocol and send everything else written to fd 1 to stderr.

    Done at the file-descriptor level, not only on `sys.stdout`, because C extensions, tqdm and
    libraries that captured `sys.stdout` at import time would otherwise still write to the protocol.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return ProgressWriter(os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1))


def _build(cls: type[Any], fields: dict[str, Any], where: str) -> Any:
    hints = _field_types(cls)
    unknown = sorted(set(fields) - set(hints))
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in fields:
            if spec.default is dataclasses.MISSING:
                raise ProtocolError(f"{where}: missing field {spec.name}")
            continue
        hint, value = hints[spec.name], fields[spec.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(value, dict):
                raise ProtocolError(f"{where}.{spec.name}: not an object")
            value = _build(hint, value, where=f"{where}.{spec.name}")
        elif not _conforms(value, hint):
            raise ProtocolError(f"{where}.{spec.name}: {value!r} is not {_describe(hint)}")
        values[spec.name] = value
    return cls(**values)


def _field_types(cls: type[Any]) -> dict[str, Any]:
    if cls not in _FIELD_TYPES:
        hints = get_type_hints(cls)
        _FIELD_TYPES[cls] = {spec.name: hints[spec.name] for spec in dataclasses.fields(cls)}
    return _FIELD_TYPES[cls]


_FIELD_TYPES: dict[type[Any], dict[str, Any]] = {}


def _conforms(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(_conforms(element, item) for element in value)
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # JSON's true is no number
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))  # an integral float may arrive as 2, not 2.0
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
