"""What a run leaves behind: the artifact directory and OpenAI's per-step result file.

The artifact has one of two forms, named by `artifact_format`:
  "peft"   a PEFT adapter (adapter_config.json, adapter_model.safetensors) for the adapter recipes
           (lora, qlora, lora_int8, dora, ia3, prefix_tuning, prompt_tuning): loads with
           `PeftModel.from_pretrained(base, artifact_dir)`, on an unquantized base too.
  "model"  a whole safetensors model directory for full, freeze and bitfit: loads with
           `AutoModelFor....from_pretrained(artifact_dir)`, no base needed. Freeze and bitfit change
           only some tensors, but a complete directory is what vLLM and transformers load without
           Tunery-specific code, and tunery.json names the base for whoever wants the difference.
Both carry the tokenizer (with its chat template) and `tunery.json`: base model, method, recipe, the
whole spec and, for classification, the labels, so a person can tell what it is and rerun it by hand.
Classification artifacts also carry config.json, whose id2label is the label set.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.training.callbacks import StepMetrics
from worker.training.progress import ArtifactFormat
from worker.training.spec import TrainingSpec

RESULT_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
RUN_RECORD_NAME = "tunery.json"


@dataclass(frozen=True)
class TrainingOutcome:
    """What the `completed` protocol line reports."""

    trained_tokens: int
    artifact_dir: Path
    artifact_format: ArtifactFormat
    result_file: Path
    labels: list[str] | None = None


@dataclass(frozen=True)
class StoppedOutcome:
    """What the `stopped` protocol line reports: where to resume from."""

    step: int
    resume_from: Path | None


def artifact_format(spec: TrainingSpec) -> ArtifactFormat:
    return "peft" if spec.recipe.is_peft else "model"


def save_artifact(
    model: Any,
    tokenizer: Any,
    spec: TrainingSpec,
    directory: Path,
    labels: list[str] | None = None,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Save the artifact of `spec`'s form, the tokenizer and the run record into `directory`.

    `state_dict`: the weights to write when the model's own are shards (an fsdp run gathers them).
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = {"state_dict": state_dict} if state_dict is not None else {}
    if spec.recipe.is_peft:
        # Only the trained adapter: DPO adds a frozen "ref" copy of it to the model as its reference.
        model.save_pretrained(directory, selected_adapters=["default"], **weights)
    else:
        model.save_pretrained(directory, **weights)
    if labels is not None and spec.recipe.is_peft:
        # The adapter holds the trained head, but the label names live in the model config.
        model.get_base_model().config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    record = {
        "job_id": spec.job_id,
        "base_model_dir": spec.base_model_dir,
        "method": spec.method,
        "artifact_format": artifact_format(spec),
        "recipe": spec.to_dict()["recipe"],
        "labels": labels,
        # The chain: the fine-tuned or checkpoint model this run trained on from, if any.
        "started_from": spec.start_from,
        "spec": spec.to_dict(),
    }
    (directory / RUN_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return directory


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
