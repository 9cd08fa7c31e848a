"""Recipes: one readable file per family, each building the model that trains for its `type`.

A recipe module has `TYPES` (the recipe types it builds) and `build(spec, base) -> model`: it loads
the base (choosing dtype and quantization), freezes what must not train and wraps what does.
Optional: `optimizer(spec, use_cuda) -> str` (the Trainer's optim name; default adamw_torch) and
`supports_gradient_checkpointing(recipe_type) -> bool` (default yes). The
method (supervised, dpo, classification) then builds the trainer around it; data, callbacks,
checkpoints and artifacts are shared (worker/training/run.py). A new recipe is a file and a row below.
"""

from __future__ import annotations

from types import ModuleType

from worker.training.recipes import bitfit, freeze, full, ia3, lora, prompt

FAMILIES: tuple[ModuleType, ...] = (lora, ia3, prompt, bitfit, freeze, full)
RECIPES: dict[str, ModuleType] = {recipe_type: family for family in FAMILIES for recipe_type in family.TYPES}


def get_recipe(recipe_type: str) -> ModuleType:
    """The family module that builds `recipe_type`; ValueError naming the known types otherwise."""
    try:
        return RECIPES[recipe_type]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise ValueError(f"unknown recipe type {recipe_type!r}; known recipe types: {known}") from None
