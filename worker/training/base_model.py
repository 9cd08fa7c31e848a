"""Loading the base model for the run's method: what every recipe starts from.

The method decides the model class (a causal LM for supervised and DPO, a sequence classifier with a
new head for classification); the recipe decides the dtype and any quantization, then adapts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from worker.training.precision import Precision


@dataclass(frozen=True)
class BaseModel:
    directory: str
    task: str  # peft's task type: "CAUSAL_LM" or "SEQ_CLS"
    precision: Precision
    # Classification: num_labels, id2label, label2id for the new head.
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self, dtype: torch.dtype | None = None, quantization_config: Any = None) -> Any:
        model_class = AutoModelForSequenceClassification if self.task == "SEQ_CLS" else AutoModelForCausalLM
        kwargs = dict(self.model_kwargs)
        if quantization_config is not None:
            kwargs["quantization_config"] = quantization_config
            # bitsandbytes quantizes while placing the weights, so the device is chosen at load time:
            # the rank's own GPU in a distributed run (distributed.init_process_group chose it).
            device = torch.cuda.current_device() if self.precision.use_cuda else "cpu"
            kwargs["device_map"] = {"": device}
        return model_class.from_pretrained(self.directory, dtype=dtype or self.precision.dtype, **kwargs)


# Set by worker.training.fsdp.shard: the counts taken before sharding, when 4-bit weights still said
# what they hold (a sharded one is a plain tensor of packed bytes).
COUNTS_ATTRIBUTE = "tunery_parameter_counts"


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count as the values they hold, not their bytes."""
    counted = getattr(model, COUNTS_ATTRIBUTE, None)
    if counted is not None:
        return counted
    trainable = total = 0
    for parameter in model.parameters():
        n = parameter.numel()
        if getattr(parameter, "quant_state", None) is not None:
            # bitsandbytes packs two 4-bit values into each byte of its storage dtype (uint8, or the
            # compute dtype under fsdp).
            n *= 2 * parameter.element_size()
        total += n
        if parameter.requires_grad:
            trainable += n
    return trainable, total


def is_head_parameter(model: Any, name: str) -> bool:
    """Whether a parameter sits outside the backbone: the LM head, or a classifier's new head."""
    return not name.startswith(model.base_model_prefix + ".")


def full_precision_dtype() -> torch.dtype:
    # Recipes that update base weights keep them in fp32 and get half-precision speed from autocast:
    # stored in bf16, a small update to a large weight rounds away to nothing.
    return torch.float32
