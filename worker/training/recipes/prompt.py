"""Soft prompts: prompt_tuning (learned input embeddings) and prefix_tuning (learned keys and values
in every layer), `num_virtual_tokens` of them, in front of each example. The model is untouched."""

from __future__ import annotations

from typing import Any

from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

from worker.training.base_model import BaseModel
from worker.training.spec import TrainingSpec

TYPES = ("prompt_tuning", "prefix_tuning")


def supports_gradient_checkpointing(recipe_type: str) -> bool:
    # Prefix tuning hands its prefix to every layer as cached keys and values, and checkpointed layers
    # drop the cache (transformers turns use_cache off under checkpointing): the prefix would vanish.
    return recipe_type != "prefix_tuning"


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    model = base.load()
    n_tokens = spec.recipe.num_virtual_tokens
    if spec.recipe.type == "prompt_tuning":
        config: Any = PromptTuningConfig(task_type=base.task, num_virtual_tokens=n_tokens)
    else:
        config = PrefixTuningConfig(task_type=base.task, num_virtual_tokens=n_tokens)
    return get_peft_model(model, config)
