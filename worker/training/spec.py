"""TrainingSpec: everything one training run needs, in one JSON-serialisable object.

The worker writes it to `spec.json` and starts `python -m worker.training spec.json`; a person can
do the same by hand. Every "auto" is already resolved: the trainer makes no choices of its own, but
for what depends on the machine it lands on (precision "auto", paged optimizers on CUDA).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SUPPORTED_METHODS = ("supervised", "dpo", "classification")
RECIPE_TYPES = (
    "lora",
    "qlora",
    "lora_int8",
    "dora",
    "ia3",
    "prefix_tuning",
    "prompt_tuning",
    "bitfit",
    "freeze",
    "full",
)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")


class RecipeError(ValueError):
    """The recipe can't train this base model (bitfit on a model without biases, say)."""


@dataclass(frozen=True)
class Recipe:
    """How to train: the adapter or weight subset that learns, and the shared optimisation settings.

    Fields that do not apply to `type` (lora_r for ia3, say) are ignored here; the API refuses them
    when they are given explicitly (api/fine_tuning/recipe_schema.py), so a record never claims them.
    """

    type: str = "lora"
    # lora, qlora, lora_int8, dora
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # "all-linear" (peft's shorthand for every linear layer but the head) or explicit module names;
    # lora family and ia3.
    target_modules: str | list[str] = "all-linear"
    # prefix_tuning, prompt_tuning
    num_virtual_tokens: int = 20
    # freeze: the top blocks that train, with the head; 0 trains the head alone.
    trainable_layers: int = 2
    # Shared by every type.
    max_seq_length: int = 1024
    packing: bool = False
    gradient_checkpointing: bool = True
    precision: str = "auto"
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    train_on_inputs: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.type not in RECIPE_TYPES:
            problems.append(f"recipe.type must be one of {', '.join(RECIPE_TYPES)}, not {self.type!r}")
        if self.precision not in PRECISIONS:
            problems.append(
                f"recipe.precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        if self.lr_scheduler not in LR_SCHEDULERS:
            problems.append(
                f"recipe.lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, not {self.lr_scheduler!r}"
            )
        if self.trainable_layers < 0:
            problems.append("recipe.trainable_layers must be 0 or more")
        if self.max_seq_length < 1:
            problems.append("recipe.max_seq_length must be positive")
        if problems:
            raise ValueError("invalid recipe: " + "; ".join(problems))

    @property
    def is_peft(self) -> bool:
        """Whether the artifact is a PEFT adapter (else a whole model directory)."""
        return self.type not in ("bitfit", "freeze", "full")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        """Build from a stored recipe (e.g. `RecipeIn.model_dump()`): nulls mean "the default".

        Unknown keys are refused rather than dropped: a misspelt field that silently trained with
        the default would be worse than a failed job.
        """
        known = {spec_field.name for spec_field in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"invalid recipe: unknown field(s) {', '.join(unknown)}")
        return cls(**{key: value for key, value in raw.items() if value is not None})


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
    recipe: Recipe = field(default_factory=Recipe)
    # DPO: how far the trained policy may move from the reference (higher = stay closer).
    beta: float = 0.1
    # Classification: the label order (id i = labels[i]). None: sorted unique str(label) of the
    # training file.
    labels: list[str] | None = None
    # Extra resumable checkpoints between epoch ends (each epoch end always saves one).
    checkpoint_every_steps: int | None = None
    checkpoint_every_minutes: float | None = None
    # A resumable checkpoint directory from an earlier run of this same spec (a `stopped` or
    # `resumable` event's path).
    resume_from: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.recipe, dict):  # built by hand from JSON
            object.__setattr__(self, "recipe", Recipe.from_dict(self.recipe))
        problems = []
        if self.method not in SUPPORTED_METHODS:
            problems.append(f"method must be one of {', '.join(SUPPORTED_METHODS)}, not {self.method!r}")
        if self.n_epochs < 1:
            problems.append("n_epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("batch_size must be at least 1")
        if not self.learning_rate > 0:
            problems.append("learning_rate must be positive")
        if not self.beta > 0:
            problems.append("beta must be positive")
        if self.labels is not None and len(set(self.labels)) < 2:
            problems.append("labels must name at least two distinct labels")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            problems.append("checkpoint_every_steps must be at least 1")
        if self.checkpoint_every_minutes is not None and not self.checkpoint_every_minutes > 0:
            problems.append("checkpoint_every_minutes must be positive")
        if problems:
            raise ValueError("invalid training spec: " + "; ".join(problems))

    @property
    def adapter_dir(self) -> Path:
        """The final artifact: a PEFT adapter, or a model directory for full/freeze/bitfit."""
        return Path(self.output_dir) / "adapter"

    @property
    def artifact_dir(self) -> Path:
        return self.adapter_dir

    @property
    def checkpoints_dir(self) -> Path:
        """Loadable epoch-end artifacts: checkpoints/step-N."""
        return Path(self.output_dir) / "checkpoints"

    @property
    def trainer_dir(self) -> Path:
        """The Trainer's resumable checkpoints (checkpoint-N, with optimizer and RNG state)."""
        return Path(self.output_dir) / "trainer"

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
        raw["recipe"] = Recipe.from_dict(raw.get("recipe") or {})
        return cls(**raw)

    @classmethod
    def read(cls, path: Path) -> TrainingSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))
