"""What a finished run leaves behind: the adapter directory and OpenAI's per-step result file.

The adapter directory loads with `PeftModel.from_pretrained(base, adapter_dir)` and carries the
tokenizer (with its chat template) and `tunery.json`, the spec that produced it, so that a person can
tell what it is and rerun it by hand.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.training.callbacks import StepMetrics
from worker.training.spec import TrainingSpec

RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
RUN_RECORD_NAME = "tunery.json"


@dataclass(frozen=True)
class TrainingOutcome:
    """What the `completed` protocol line reports."""

    trained_tokens: int
    adapter_dir: Path
    result_file: Path


def save_adapter(model: Any, tokenizer: Any, spec: TrainingSpec) -> Path:
    """Save the PEFT adapter (adapter_config.json, adapter_model.safetensors), tokenizer and run record."""
    adapter_dir = spec.adapter_dir
    adapter_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    record = {
        "job_id": spec.job_id,
        "base_model_dir": spec.base_model_dir,
        "method": spec.method,
        "recipe": spec.to_dict()["recipe"],
        "spec": spec.to_dict(),
    }
    (adapter_dir / RUN_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return adapter_dir


def write_result_file(rows: Iterable[StepMetrics], path: Path) -> Path:
    """Write OpenAI's `step_metrics.csv`: one row per step, valid cells empty where nothing was evaluated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as result_file:
        writer = csv.writer(result_file, lineterminator="\n")
        writer.writerow(RESULT_COLUMNS)
        for row in rows:
            writer.writerow(
                [
                    row.step,
                    _cell(row.train_loss),
                    _cell(row.train_accuracy),
                    _cell(row.valid_loss),
                    _cell(row.valid_mean_token_accuracy),
                ]
            )
    return path


def _cell(value: float | None) -> str:
    # Five decimals, as in OpenAI's result files (`1,1.52347,0.0,,`).
    return "" if value is None else str(round(float(value), 5))
