"""Training recipes: one readable file per method family, found by the recipe's `type`.

A recipe is a function `train(spec, progress) -> TrainingOutcome` that does the whole run, top to
bottom. A new recipe is one file and one row below, not another branch somewhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.training.artifacts import TrainingOutcome
from worker.training.progress import ProgressWriter
from worker.training.recipes import lora
from worker.training.spec import TrainingSpec

Recipe = Callable[[TrainingSpec, ProgressWriter], TrainingOutcome]

RECIPES: dict[str, Recipe] = {
    "lora": lora.train,
}


def get_recipe(recipe_type: str) -> Recipe:
    """The recipe registered under `recipe_type`; ValueError naming the known ones otherwise."""
    try:
        return RECIPES[recipe_type]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise ValueError(f"unknown recipe type {recipe_type!r}; known recipe types: {known}") from None
