"""Methods: what the model learns from (chat demonstrations, preference pairs, labelled text).

Each method is a row of the registry (catalog/methods.py) and a module here named after it, with
`prepare(spec, tokenizer, progress) -> PreparedData`, which reads and checks the data files before
any model loads, and `make_trainer(spec, model, tokenizer, data, args, callbacks, progress)`, which builds the
TRL / transformers trainer for it from the shared arguments (worker/training/run.py).
Any recipe type trains with any method.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from catalog.methods import method as registered_method


@dataclass
class PreparedData:
    train_dataset: Any  # datasets.Dataset
    eval_dataset: Any | None
    n_examples: int
    tokens_per_epoch: int  # what one epoch bills
    task: str  # peft task type of the model: "CAUSAL_LM" or "SEQ_CLS"
    accuracy_key: str  # the logged value that fills the result file's accuracy columns
    labels: list[str] | None = None  # classification: id i is labels[i]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    reward: Any = None  # reinforcement: the reward function GRPO calls on the sampled answers
    max_completion_tokens: int | None = None  # reinforcement: how long a sampled answer may grow


def supervised_only_settings(spec: Any) -> list[str]:
    """The recipe settings given that the spec's method does not read (packing, train_on_inputs: the
    registry's `ignores`; only supervised training reads them)."""
    return [name for name in registered_method(spec.method).ignores if getattr(spec.recipe, name)]


def get_method(name: str) -> ModuleType:
    # Imported on demand: each method pulls its own trainer classes.
    return importlib.import_module(f"worker.training.methods.{registered_method(name).name}")
