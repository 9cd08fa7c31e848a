"""Recipes: one readable file per family, each building the model that trains for its `type`.

Which family builds which type is the registry's (catalog/recipes.py, `RecipeType.family`). A family
module has `build(spec, base) -> model`: it loads the base (choosing dtype and quantization), freezes
what must not train and wraps what does. Optional: `optimizer(spec, use_cuda) -> str` (the Trainer's
optim name; default adamw_torch) and `supports_gradient_checkpointing(recipe_type) -> bool` (default
yes). The method (supervised, dpo, classification) then builds the trainer around it; data,
callbacks, checkpoints and artifacts are shared (worker/training/run.py). A new type is a row in the
registry and, for a new family, a file here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from catalog.recipes import recipe_type as registered_type


def get_recipe(recipe_type: str) -> ModuleType:
    """The family module that builds `recipe_type`; ValueError naming the known types otherwise."""
    family = registered_type(recipe_type).family
    # Imported on demand: families pull peft and bitsandbytes pieces of their own.
    return importlib.import_module(f"worker.training.recipes.{family}")
