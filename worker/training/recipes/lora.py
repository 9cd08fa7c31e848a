"""The LoRA family: lora, dora, qlora (4-bit NF4 base) and lora_int8 (8-bit base).

The base weights stay frozen; low-rank matrices A and B train beside every targeted linear layer,
B starting at zero so that training starts from the base model exactly. DoRA also learns a per-column
magnitude. QLoRA and int8 keep the frozen base quantized to cut its memory 4x / 2x: the adapter itself
still trains in full precision, so it loads on an unquantized base as well.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig, prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig

from worker.training.base_model import BaseModel
from worker.training.recipes.starting import adapter_model
from worker.training.spec import TrainingSpec


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    recipe = spec.recipe
    quantization = _quantization(recipe.type, base, sharded=recipe.distributed == "fsdp")
    model = base.load(quantization_config=quantization)
    if quantization is not None:
        # Casts norms and the head to fp32 and makes the input embeddings' outputs require grad, which
        # checkpointed layers over a frozen, quantized base need for gradients to reach the adapter.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing
        )
    config = LoraConfig(
        task_type=base.task,
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.target_modules,
        use_dora=recipe.type == "dora",
    )
    return adapter_model(model, config, spec)


def optimizer(spec: TrainingSpec, use_cuda: bool) -> str:
    # Paged AdamW moves optimizer state to CPU memory under GPU memory pressure instead of failing:
    # part of QLoRA's recipe for fitting large models on one GPU. Paging needs CUDA.
    if spec.recipe.type == "qlora" and use_cuda:
        return "paged_adamw_32bit"
    return "adamw_torch"


def _quantization(recipe_type: str, base: BaseModel, sharded: bool) -> BitsAndBytesConfig | None:
    if recipe_type == "qlora":
        # NF4 suits normally distributed weights; double quantization also quantizes the per-block
        # scales (~0.4 bit per weight saved). Matmuls run in bf16 where the GPU has it, else fp32.
        compute = torch.bfloat16 if base.precision.name == "bf16" else torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
            # FSDP shards and gathers float tensors only: under fsdp the packed 4-bit values are kept
            # in the compute dtype (8 per fp32 element, 4 per bf16 one), which FSDP then gathers as is.
            bnb_4bit_quant_storage=compute if sharded else torch.uint8,
        )
    if recipe_type == "lora_int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None
