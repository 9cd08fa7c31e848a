"""TrainingSpec: everything one training run needs, in one JSON-serialisable object.

The worker writes it to `spec.json` and starts `python -m worker.training spec.json`; a person can
do the same by hand. Every "auto" is already resolved: the trainer makes no choices of its own, but
for what depends on the machine it lands on (precision "auto", paged optimizers on CUDA).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.methods import DEFAULT_METHOD
from catalog.methods import METHOD_NAMES as SUPPORTED_METHODS
from catalog.recipes import RECIPE_TYPE_NAMES as RECIPE_TYPES
from catalog.recipes import Recipe

__all__ = ["RECIPE_TYPES", "SUPPORTED_METHODS", "Recipe", "RecipeError", "TrainingSpec"]


class RecipeError(ValueError):
    """The recipe can't train this base model (bitfit on a model without biases, say)."""


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
    method: str = DEFAULT_METHOD
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
    # True: the trainer removes none of its resumable checkpoints; the worker removes each once it
    # has named a newer one (or could not store it). The worker reads each from the disk (and on S3
    # uploads it) after the trainer reported it, and a trainer running ahead of it rotated them away
    # first. False (a run on a Ray cluster, whose disks the worker does not tend): the newest two.
    worker_removes_checkpoints: bool = False
    # Trained on from an earlier fine-tune (api/fine_tuning/start_from.py's record plus `directory`):
    # a "peft" one's adapter is loaded and trained on; a "model" one is base_model_dir itself.
    start_from: dict[str, Any] | None = None
    # Reinforcement: the grader (OpenAI's object, graders/types.py) that rewards each sampled answer,
    # the python graders' sandbox (graders/sandbox.py Limits fields, and `hidden` directories), the
    # answers sampled per prompt, how long an answer may grow, and validation every eval_interval
    # steps on eval_samples prompts of the validation file. `judges`: where each model grader's judging
    # model answers, {model: {"url", "body"}} or {model: {"error": why}} (graders/remote_judge.py).
    grader: dict[str, Any] | None = None
    grader_sandbox: dict[str, Any] | None = None
    judges: dict[str, dict[str, Any]] | None = None
    num_generations: int = 4
    max_completion_tokens: int = 64
    eval_interval: int = 1
    eval_samples: int = 8

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
        if self.method == "reinforcement" and not self.grader:
            problems.append("the reinforcement method needs a grader")
        if self.num_generations < 2:
            problems.append("num_generations must be at least 2")
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
        return {**asdict(self), "recipe": self.recipe.model_dump()}

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
