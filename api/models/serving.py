"""Whether vLLM serves a fine-tuned model's adapter as it is (`--enable-lora`, `--lora-modules`), read
from the artifact's adapter_config.json and the base's config.json, without torch.

vLLM's LoRA support takes plain LoRA (no DoRA, no IA3, no prompt or prefix tuning) on the linear layers
it knows for the architecture, up to `--max-lora-rank`, and no `modules_to_save` (a whole trained
copy of the embeddings or head, or a classifier head). Anything else is served from the merged export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api.models.schemas import ModelServing

ADAPTER_CONFIG = "adapter_config.json"
_LLAMA_LIKE = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
# The linear layers vLLM's LoRA layers cover, by the base's config.json model_type.
VLLM_LORA_MODULES: dict[str, frozenset[str]] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
}
_MERGED = "Serve the merged export instead (GET /v1/models/{model}/download?format=merged)."


def read_adapter_config(directory: Path) -> dict[str, Any] | None:
    """The artifact's adapter config; None for a whole model (full, freeze, bitfit) or an unreadable one."""
    try:
        config = json.loads((directory / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def read_model_type(base_dir: Path | None) -> str | None:
    if base_dir is None:
        return None
    try:
        config = json.loads((base_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return model_type if isinstance(model_type, str) else None


def serving_of(directory: Path, base_dir: Path | None, max_rank: int) -> ModelServing:
    if not (directory / ADAPTER_CONFIG).exists():
        return ModelServing(
            vllm_lora=False,
            reason="A whole model (full, freeze or bitfit), not an adapter: vLLM serves its directory "
            "as a model.",
            format="merged",
        )
    config = read_adapter_config(directory)
    if config is None:
        return _not_as_is("adapter_config.json could not be read.")
    return vllm_lora_verdict(config, read_model_type(base_dir), max_rank)


def vllm_lora_verdict(config: dict[str, Any], model_type: str | None, max_rank: int) -> ModelServing:
    """Whether vLLM loads the adapter of `config` on a base of `model_type` as it is, and if not why."""
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        return _not_as_is(f"vLLM loads LoRA adapters only; this is a {peft_type} adapter.")
    if config.get("use_dora"):
        return _not_as_is("vLLM does not load DoRA adapters.")
    if config.get("modules_to_save"):
        saved = ", ".join(sorted(config["modules_to_save"]))
        return _not_as_is(f"The adapter saves whole modules ({saved}); vLLM's LoRA does not load them.")
    supported = VLLM_LORA_MODULES.get(model_type or "")
    if supported is None:
        return _not_as_is(f"Tunery does not know which modules vLLM's LoRA covers for '{model_type}' models.")
    targets = config.get("target_modules")
    if not isinstance(targets, list):
        return _not_as_is("The adapter's target_modules is a pattern, not a list of modules.")
    unsupported = sorted({name.rsplit(".", 1)[-1] for name in targets} - supported)
    if unsupported:
        return _not_as_is(
            f"vLLM's LoRA support for {model_type} covers {', '.join(sorted(supported))}; the adapter also "
            f"targets {', '.join(unsupported)}."
        )
    rank = max([int(config.get("r") or 0), *[int(r) for r in (config.get("rank_pattern") or {}).values()]])
    if rank > max_rank:
        return _not_as_is(f"The adapter's rank {rank} is above the deployment's limit ({max_rank}).")
    return ModelServing(vllm_lora=True, reason=None, format="adapter")


def _not_as_is(reason: str) -> ModelServing:
    return ModelServing(vllm_lora=False, reason=f"{reason} {_MERGED}", format="merged")
