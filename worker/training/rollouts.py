"""Where GRPO's rollouts are sampled: TRL's vLLM engine where a GPU has it, else the trainer's own model.

In TRL's colocate mode a vLLM engine lives in the trainer's process, on its GPU, and before each
generation the policy's current weights are copied into it (a LoRA, DoRA or IA3 adapter merged in
for the copy and taken out again): sampling many times faster than transformers' `generate`, which
dominates a reinforcement step. It is chosen by itself, never configured: only where CUDA is present
and vllm can be imported, and only for recipes whose weights vLLM can be handed as they are. A
quantized base (qlora, lora_int8) would reach vLLM dequantized with the adapter merged into rounded
weights, and soft prompts (prefix_tuning, prompt_tuning) do not merge at all: those sample on the
trainer's own model, as every run on a CPU does.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

VLLM_RECIPES = frozenset({"lora", "dora", "ia3", "full", "freeze", "bitfit"})
VLLM_GPU_MEMORY_UTILIZATION = 0.3
"""The share of the GPU the colocated engine takes for its weights and KV cache (TRL's default);
the rest stays for training."""


@dataclass(frozen=True)
class Rollouts:
    use_vllm: bool
    reason: str

    def config(self) -> dict[str, Any]:
        """GRPOConfig's fields for this choice."""
        if not self.use_vllm:
            return {"use_vllm": False}
        return {
            "use_vllm": True,
            "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION,
        }


def choose(recipe_type: str, cuda: bool, vllm_importable: bool) -> Rollouts:
    if not cuda:
        return Rollouts(False, "rollouts sampled on the trainer's own model (no CUDA device)")
    if not vllm_importable:
        return Rollouts(False, "rollouts sampled on the trainer's own model (vllm is not installed)")
    if recipe_type not in VLLM_RECIPES:
        return Rollouts(
            False,
            f"rollouts sampled on the trainer's own model ({recipe_type} weights do not copy into vLLM)",
        )
    return Rollouts(True, "rollouts sampled by vLLM on the training GPU (TRL's colocate mode)")


def detect(recipe_type: str) -> Rollouts:
    """The choice for this machine."""
    import torch

    return choose(recipe_type, torch.cuda.is_available(), importlib.util.find_spec("vllm") is not None)
