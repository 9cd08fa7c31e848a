"""Training on from a fine-tuned or checkpoint model: `model="ft:..."` on job create, as OpenAI allows.

The new job trains the same base again, starting from the earlier run's weights: an adapter recipe
loads the earlier adapter and trains it on (so its shape must be the same: type family, rank, alpha,
targets, virtual tokens), a whole-model recipe (full, freeze, bitfit) starts from the earlier whole
model. The job's `model` answers the name it was created with; its row keeps the original base (so
`fine_tuned_model` names that base, as OpenAI's does) and the chain in `start_from`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.checkpoints import repository as checkpoints
from api.config import Settings
from api.errors import InvalidRequest, model_not_found
from api.fine_tuning import artifacts
from api.fine_tuning import repository as jobs
from api.fine_tuning.recipe_schema import RecipeIn
from catalog.methods import DEFAULT_METHOD, METHODS
from catalog.recipes import LORA_FIELDS, RECIPE_TYPES

# The LoRA types whose adapters are the same tensors (the quantization is the base's, not the adapter's).
_SAME_ADAPTER = {"lora": "lora", "qlora": "lora", "lora_int8": "lora"}


@dataclass(frozen=True)
class StartingPoint:
    model: str
    """The fine-tuned or checkpoint model's name, as the job was created with it."""
    job_id: str
    step: int | None
    """The checkpoint's step; None for a job's fine-tuned model."""
    base_model: str
    artifact_format: str
    """"peft" (an adapter trained on) or "model" (a whole model trained on)."""

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def is_fine_tuned_name(model: str) -> bool:
    return model.startswith("ft:")


def resolve(
    session: Session, settings: Settings, caller: Caller, model: str, method_type: str, recipe: RecipeIn
) -> StartingPoint:
    """The starting point `model` names, if the caller may use it and the job can train on from it."""
    job = jobs.by_fine_tuned_model(session, caller.scope, model)
    step: int | None = None
    if job is not None:
        directory = artifacts.adapter_dir(settings, job.id)
    else:
        checkpoint = checkpoints.by_model_name(session, caller.scope, model)
        if checkpoint is None:
            raise model_not_found(model, param="model")
        job, step = checkpoint.job, checkpoint.step_number
        directory = artifacts.checkpoint_dir(settings, job.id, step)
    if not artifacts.exists(settings, directory):  # its files are gone: being deleted
        raise model_not_found(model, param="model")
    earlier_method = (job.method or {}).get("type") or DEFAULT_METHOD
    if METHODS[earlier_method].task != "CAUSAL_LM" or METHODS[method_type].task != "CAUSAL_LM":
        raise InvalidRequest(
            f"Training on from {model} is for chat models; classification models start from a base model.",
            param="model",
            code="invalid_starting_model",
        )
    point = StartingPoint(
        model=model,
        job_id=job.id,
        step=step,
        base_model=job.model,
        artifact_format=RECIPE_TYPES[job.recipe.get("type", "lora")].artifact,
    )
    _check_compatible(point, job.recipe, recipe)
    return point


def _check_compatible(point: StartingPoint, earlier: dict[str, Any], recipe: RecipeIn) -> None:
    earlier_type, new_type = earlier.get("type", "lora"), recipe.type
    if point.artifact_format == "model":
        if RECIPE_TYPES[new_type].artifact != "model":
            raise _incompatible(
                f"{point.model} is a whole-model fine-tune ({earlier_type}); train on from it with recipe "
                "type full, freeze or bitfit (an adapter would need it as its base)."
            )
        return
    if _SAME_ADAPTER.get(earlier_type, earlier_type) != _SAME_ADAPTER.get(new_type, new_type):
        raise _incompatible(
            f"{point.model} is a {earlier_type} adapter, which a {new_type} recipe can't train on; use "
            f"recipe type {earlier_type}."
        )
    fields = RECIPE_TYPES[new_type].fields
    asked = recipe.model_dump()
    for name in fields if fields != LORA_FIELDS else ("lora_r", "lora_alpha", "target_modules"):
        if name in earlier and asked.get(name) != earlier[name]:
            raise _incompatible(
                f"{point.model} is a {earlier_type} with {name} {earlier[name]!r}; this job's recipe asks "
                f"for {asked.get(name)!r}. Train on from it with the same {name}.",
                param=f"recipe.{name}",
            )


def _incompatible(message: str, param: str = "recipe.type") -> InvalidRequest:
    return InvalidRequest(message, param=param, code="incompatible_starting_model")
