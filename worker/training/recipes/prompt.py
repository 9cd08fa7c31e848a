"""Soft prompts: prompt_tuning (learned input embeddings) and prefix_tuning (learned keys and values
in every layer), `num_virtual_tokens` of them, in front of each example. The model is untouched."""

from __future__ import annotations

import inspect
from typing import Any

from peft import PrefixTuningConfig, PromptTuningConfig

from worker.training.base_model import BaseModel
from worker.training.recipes.starting import adapter_model
from worker.training.spec import TrainingSpec


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
        if base.task == "SEQ_CLS":
            accept_prefix_cache(model)
    return adapter_model(model, config, spec)


def accept_prefix_cache(model: Any) -> None:
    """Let peft hand a sequence classifier its prefix as the layers' cache.

    peft passes the prefix to a classifier only if the model's `forward` names `past_key_values`;
    transformers 5 renamed that argument `cache` (still accepting the old name), so peft refuses
    ("Model does not support past key values"). This forward names the old argument and passes it on
    under the new one; causal LMs need nothing, as peft gives them the prefix without looking.
    """
    parameters = inspect.signature(model.forward).parameters
    if "past_key_values" in parameters or "cache" not in parameters:
        return
    forward = model.forward

    def forward_with_prefix(*args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return forward(*args, **kwargs)

    # The Trainer keeps the dataset columns that `forward` names: it must still see the real ones.
    signature = inspect.signature(forward)
    extra = inspect.Parameter("past_key_values", inspect.Parameter.KEYWORD_ONLY, default=None)
    named = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    rest = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    forward_with_prefix.__signature__ = signature.replace(parameters=[*named, extra, *rest])  # type: ignore[attr-defined]
    model.forward = forward_with_prefix
