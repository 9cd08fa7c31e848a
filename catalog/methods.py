"""Fine-tuning methods: what a model learns from. Defined once.

`METHODS` is the registry: one row per method (OpenAI's `method.type`), with the dataset formats it
trains on, the hyperparameters a request may give it and their "auto" defaults, its learning rate
relative to the recipe type's, and the model it trains (a causal LM or a sequence classifier).
The API's request schema, its hyperparameter rules and validation, and the trainer read these rows;
the trainer's code for a method is worker/training/methods/{name}.py. Adding a method is a row here
and that file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.recipes import RecipeType, recipe_type

MethodName = Literal["supervised", "dpo", "classification", "reinforcement"]
Task = Literal["CAUSAL_LM", "SEQ_CLS"]

Auto = Literal["auto"]
NEpochs = Auto | Annotated[int, Field(ge=1, le=50)]
BatchSize = Auto | Annotated[int, Field(ge=1, le=256)]
# Up to 10,000: a small model (the tests' tiny random one) can need rates far above the base one.
LearningRateMultiplier = Auto | Annotated[float, Field(gt=0, le=10_000)]
Beta = Auto | Annotated[float, Field(gt=0, le=2)]


class HyperparametersIn(BaseModel):
    """The hyperparameters every method takes; "auto" is resolved from the dataset at validation."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: NEpochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"


class DpoHyperparametersIn(HyperparametersIn):
    beta: Beta = Field(default="auto", description="How far the policy may move from the reference.")


EvalInterval = Auto | Annotated[int, Field(ge=1, le=10_000)]
EvalSamples = Auto | Annotated[int, Field(ge=1, le=10_000)]
ComputeMultiplier = Auto | Annotated[float, Field(ge=0.5, le=8)]


class ReinforcementHyperparametersIn(HyperparametersIn):
    """OpenAI's reinforcement hyperparameters, with what each means for an open model (README)."""

    eval_interval: EvalInterval = Field(default="auto", description="Training steps between validations.")
    eval_samples: EvalSamples = Field(
        default="auto", description="Validation prompts answered and graded at each validation."
    )
    compute_multiplier: ComputeMultiplier = Field(
        default="auto",
        description="Scales the answers sampled per prompt (GRPO group): 4 x compute_multiplier, at least 2.",
    )
    reasoning_effort: Literal["default", "low", "medium", "high"] = Field(
        default="default",
        description="OpenAI's reasoning models' setting; an open model has none, so only 'default' is taken.",
    )

    @field_validator("reasoning_effort")
    @classmethod
    def _no_effort_to_set(cls, value: str) -> str:
        if value != "default":
            raise ValueError(
                f"reasoning_effort {value!r} means nothing for an open model: the models Tunery trains have "
                "no reasoning-effort setting. Leave it out or give 'default'."
            )
        return value


# Answers sampled per prompt at compute_multiplier 1: GRPO learns from how they differ.
GENERATIONS_PER_PROMPT = 4
# How long an answer may grow during rollouts (tokens); graders see the answer cut there.
MAX_COMPLETION_TOKENS = 64


def generations_per_prompt(compute_multiplier: float) -> int:
    return max(2, round(GENERATIONS_PER_PROMPT * compute_multiplier))


# DPO starts from a model that already answers well and only shifts preferences between its own
# likely answers; at SFT rates it drifts from the reference and the loss collapses (TRL's default for
# full DPO is 1e-6). A tenth of the SFT rate.
DPO_FACTOR = 0.1


@dataclass(frozen=True)
class Method:
    name: str
    formats: tuple[str, ...]
    """The dataset formats (catalog.formats) it trains on."""
    task: Task
    hyperparameters: type[HyperparametersIn]
    """What `method.{name}.hyperparameters` may hold."""
    learning_rate: Callable[[RecipeType], float]
    """The base learning rate for a recipe type, before learning_rate_multiplier."""
    auto: dict[str, Any] = field(default_factory=dict)
    """What "auto" means for its own hyperparameters (the shared ones follow written rules)."""
    ignores: tuple[str, ...] = ()
    """Recipe settings it does not read; a job that sets them gets a warning event."""
    labels: bool = False
    """Learns a closed set of labels from the training file, which the job records (and shows in
    `method.{name}.labels`) and a validation file may not go beyond."""
    summary: str = ""
    grader: bool = False
    """Trains against a grader given in `method.{name}.grader` (graders/), which the job records."""


_ROWS = (
    Method(
        "supervised",
        formats=("chat", "prompt_completion"),
        task="CAUSAL_LM",
        hyperparameters=HyperparametersIn,
        learning_rate=lambda kind: kind.learning_rate,
        summary="demonstrations: the assistant's turns of chat examples",
    ),
    Method(
        "dpo",
        formats=("preference",),
        task="CAUSAL_LM",
        hyperparameters=DpoHyperparametersIn,
        learning_rate=lambda kind: kind.learning_rate * DPO_FACTOR,
        # The value of the DPO paper and TRL's default.
        auto={"beta": 0.1},
        ignores=("packing", "train_on_inputs", "group_by_length"),
        summary="preference pairs, through TRL's DPOTrainer",
    ),
    Method(
        "classification",
        formats=("classification",),
        task="SEQ_CLS",
        hyperparameters=HyperparametersIn,
        learning_rate=lambda kind: kind.head_learning_rate or kind.learning_rate,
        ignores=("packing", "train_on_inputs"),
        labels=True,
        summary="Tunery's extension: a sequence classifier on {text, label} lines",
    ),
    Method(
        "reinforcement",
        formats=("reinforcement",),
        task="CAUSAL_LM",
        hyperparameters=ReinforcementHyperparametersIn,
        # GRPO's updates are noisy (a reward, not a target per token): a tenth of the SFT rate, as DPO.
        learning_rate=lambda kind: kind.learning_rate * DPO_FACTOR,
        auto={
            "eval_interval": 1,
            "eval_samples": 8,
            "compute_multiplier": 1.0,
            "reasoning_effort": "default",
        },
        ignores=("packing", "train_on_inputs"),
        grader=True,
        summary="prompts and a grader: answers sampled from the model, rewarded, through TRL's GRPOTrainer",
    ),
)
METHODS: dict[str, Method] = {row.name: row for row in _ROWS}
# A job that names no method (OpenAI's legacy top-level hyperparameters) trains this one.
DEFAULT_METHOD = "supervised"
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
assert get_args(MethodName) == METHOD_NAMES, "MethodName and the rows must name the same methods"


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHOD_NAMES)}") from None


def base_learning_rate(recipe_type_name: str, method_name: str) -> float:
    """The learning rate a recipe type trains at for a method, before the multiplier."""
    return method(method_name).learning_rate(recipe_type(recipe_type_name))
