"""IA3: learned per-channel scaling vectors on keys, values and the feed-forward output.

Far fewer parameters than LoRA (one vector per targeted layer), for small data sets or many adapters.
"""

from __future__ import annotations

from typing import Any

from peft import IA3Config
from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING

from worker.training.base_model import BaseModel
from worker.training.recipes.starting import adapter_model
from worker.training.spec import TrainingSpec


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    model = base.load()
    targets = spec.recipe.target_modules
    if targets == "all-linear":
        # IA3 scales chosen layers, not every linear one: peft's per-architecture defaults are the
        # published choice (keys, values, feed-forward output), so "all-linear" means those.
        config = IA3Config(task_type=base.task)
    else:
        # A feed-forward module is scaled on its input, the others on their output; peft's table says
        # which of the named modules are feed-forward for this architecture.
        feedforward = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model.config.model_type, [])
        config = IA3Config(
            task_type=base.task,
            target_modules=list(targets),
            feedforward_modules=[name for name in targets if name in feedforward],
        )
    return adapter_model(model, config, spec)
