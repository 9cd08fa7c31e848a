"""BitFit: only the bias terms train (and a classifier's new head, which has to be learnt).

A tiny number of parameters with no extra modules at inference. It needs a base whose layers have
biases (BERT, GPT-2, Qwen's attention): Llama-style models have none, and are refused with a message.
"""

from __future__ import annotations

from typing import Any

from worker.training.base_model import BaseModel, full_precision_dtype, is_head_parameter
from worker.training.spec import RecipeError, TrainingSpec


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    model = base.load(dtype=full_precision_dtype())
    n_biases = 0
    for name, parameter in model.named_parameters():
        is_bias = name.endswith(".bias") and not is_head_parameter(model, name)
        n_biases += is_bias
        parameter.requires_grad = is_bias or (base.task == "SEQ_CLS" and is_head_parameter(model, name))
    if n_biases == 0:
        raise RecipeError(
            f"bitfit trains only bias terms, and the base model ({model.config.model_type}) has none; "
            "use a recipe such as lora, or a base model whose layers have biases"
        )
    return model
