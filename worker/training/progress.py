"""The JSON-lines progress protocol of the trainer process: the only thing it writes to stdout.

The trainer's stdout carries nothing but protocol lines, one JSON object each, flushed at once, so
that the worker can parse every line it reads. Everything else that libraries print goes to stderr.

  {"event": "message", "level": "info" | "warn", "message": str}
  {"event": "started", "total_steps": int, "n_examples": int, "n_epochs": int,
                       "trainable_params": int, "total_params": int}
  {"event": "metrics", "step": int, "total_steps": int, "epoch": float, "train_loss": float,
                       "train_mean_token_accuracy": float, "learning_rate": float,
                       "valid_loss": float | null, "valid_mean_token_accuracy": float | null}
  {"event": "checkpoint", "step": int, "epoch": int, "artifact_dir": str,
                          "metrics": {"step": int, "train_loss": float, "train_mean_token_accuracy": float,
                                      "valid_loss": float | null, "valid_mean_token_accuracy": float | null,
                                      "full_valid_loss": float | null,
                                      "full_valid_mean_token_accuracy": float | null}}
                          (each epoch end: a loadable artifact of the same form as the final one)
  {"event": "resumable", "step": int, "path": str}    (a checkpoint that `resume_from` accepts)
  {"event": "stopped", "step": int, "resume_from": str | null}   (after SIGTERM; exit status 0)
  {"event": "completed", "trained_tokens": int, "artifact_dir": str, "artifact_format": "peft" | "model",
                         "adapter_dir": str (= artifact_dir, the older name), "result_file": str,
                         "labels": [str] | null (classification: id i is labels[i])}
  {"event": "failed", "code": str, "message": str}

Floats that are not finite (a diverged loss) are written as null: JSON has no NaN.
This module imports nothing heavy, so that the process can speak (and fail) before torch loads.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, TextIO


class ProgressWriter:
    """Writes protocol lines to a private stream."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **{key: _finite(value) for key, value in fields.items()}})
        self._stream.write(line + "\n")
        self._stream.flush()

    def message(self, text: str, level: str = "info") -> None:
        self.emit("message", level=level, message=text)

    def failed(self, code: str, message: str) -> None:
        self.emit("failed", code=code, message=message)


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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
