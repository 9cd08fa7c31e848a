"""Resolving "auto" hyperparameters from the dataset size, by written rules.

n_epochs: aim at 3 epochs, but see at least 100 and at most 25,000 examples in all (OpenAI's
    published rule): n_epochs = clamp(3, ceil(100 / n), floor(25000 / n)) within 1..25.
batch_size: about 0.2% of the examples, within 1..256 (small datasets train one example a step).
learning_rate_multiplier: 1.0, applied to the recipe's base learning rate (LoRA: 2e-4).
A method's own hyperparameters (DPO's beta) get the "auto" of its row in catalog/methods.py.
"""

from __future__ import annotations

import math
from typing import Any

from catalog import methods

AUTO = "auto"
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_AUTO_EPOCHS = 25


def resolve(
    requested: dict[str, Any], n_examples: int, method: str = methods.DEFAULT_METHOD
) -> dict[str, Any]:
    """Return the values a job trains with: every "auto" (or missing value) replaced."""
    resolved = {
        "n_epochs": _given(requested, "n_epochs") or auto_epochs(n_examples),
        "batch_size": min(_given(requested, "batch_size") or auto_batch_size(n_examples), max(n_examples, 1)),
        "learning_rate_multiplier": _given(requested, "learning_rate_multiplier") or 1.0,
    }
    for name, default in methods.method(method).auto.items():
        resolved[name] = _given(requested, name) or default
    return resolved


def auto_epochs(n_examples: int) -> int:
    n = max(n_examples, 1)
    epochs = TARGET_EPOCHS
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = math.ceil(MIN_TARGET_EXAMPLES / n)
    elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = MAX_TARGET_EXAMPLES // n
    return max(1, min(MAX_AUTO_EPOCHS, epochs))


def auto_batch_size(n_examples: int) -> int:
    return max(1, min(256, round(n_examples * 0.002)))


def learning_rate(recipe_type: str, method: str, multiplier: float) -> float:
    return methods.base_learning_rate(recipe_type, method) * multiplier


def _given(requested: dict[str, Any], name: str) -> Any:
    value = requested.get(name, AUTO)
    return None if value in (AUTO, None) else value
