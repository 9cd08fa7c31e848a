"""TrainingSpec: everything one training run needs, in one JSON-serialisable object.

The worker writes it to `spec.json` and starts `python -m worker.training spec.json`; a person can
do the same by hand. Every "auto" is already resolved: the trainer makes no choices of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_METHODS = ("supervised",)


@dataclass(frozen=True)
class LoraRecipe:
    """LoRA adapter settings (the only recipe of the walking skeleton)."""

    type: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # "all-linear" (peft's shorthand for every linear layer but the head) or explicit module names.
    target_modules: str | list[str] = "all-linear"
    max_seq_length: int = 1024


@dataclass(frozen=True)
class TrainingSpec:
    job_id: str
    base_model_dir: str
    training_file: str
    output_dir: str
    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    validation_file: str | None = None
    method: str = "supervised"
    recipe: LoraRecipe = field(default_factory=LoraRecipe)

    def __post_init__(self) -> None:
        problems = []
        if self.method not in SUPPORTED_METHODS:
            problems.append(f"method must be one of {', '.join(SUPPORTED_METHODS)}, not {self.method!r}")
        if self.n_epochs < 1:
            problems.append("n_epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("batch_size must be at least 1")
        if not self.learning_rate > 0:
            problems.append("learning_rate must be positive")
        if problems:
            raise ValueError("invalid training spec: " + "; ".join(problems))

    @property
    def adapter_dir(self) -> Path:
        return Path(self.output_dir) / "adapter"

    @property
    def result_file(self) -> Path:
        return Path(self.output_dir) / "step_metrics.csv"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingSpec:
        raw = dict(raw)
        raw["recipe"] = LoraRecipe(**raw.get("recipe", {}))
        return cls(**raw)

    @classmethod
    def read(cls, path: Path) -> TrainingSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))
