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

from pydantic import BaseModel, ConfigDict, Field

from catalog.recipes import RecipeType, recipe_type

MethodName = Literal["supervised", "dpo", "classification"]
Task = Literal["CAUSAL_LM", "SEQ_CLS"]

Auto = Literal["auto"]
NEpochs = Auto | Annotated[int, Field(ge=1, le=50)]
BatchSize = Auto | Annotated[int, Field(ge=1, le=256)]
LearningRateMultiplier = Auto | Annotated[float, Field(gt=0, le=100)]
Beta = Auto | Annotated[float, Field(gt=0, le=2)]


class HyperparametersIn(BaseModel):
    """The hyperparameters every method takes; "auto" is resolved from the dataset at validation."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: NEpochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"


class DpoHyperparametersIn(HyperparametersIn):
    beta: Beta = Field(default="auto", description="How far the policy may move from the reference.")


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
