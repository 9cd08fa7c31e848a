"""The one torch-free reader of safetensors headers, which the API's estimates and admission and the
trainer's checkpointing decision both use."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from catalog.safetensors_headers import model_shape, read_tensors

CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 1,
    "hidden_size": 8,
    "num_attention_heads": 2,
    "vocab_size": 16,
}


def test_a_single_file_is_read_without_loading_it(tmp_path: Path) -> None:
    save_file(
        {"a.weight": torch.zeros(3, 4), "b.bias": torch.zeros(5, dtype=torch.bfloat16)},
        tmp_path / "model.safetensors",
    )
    tensors = read_tensors(tmp_path)
    assert tensors is not None
    assert {name: (t.shape, t.dtype) for name, t in tensors.items()} == {
        "a.weight": ((3, 4), "F32"),
        "b.bias": ((5,), "BF16"),
    }


def test_every_shard_of_an_index_is_read(tmp_path: Path) -> None:
    save_file(
        {"model.embed_tokens.weight": torch.zeros(16, 8)}, tmp_path / "model-00001-of-00002.safetensors"
    )
    save_file({"lm_head.weight": torch.zeros(16, 8)}, tmp_path / "model-00002-of-00002.safetensors")
    weight_map = {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    # A stray file beside the shards (an adapter, an old export) is not part of the model.
    save_file({"stray": torch.zeros(1000)}, tmp_path / "adapter_model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    shape = model_shape(tmp_path)
    assert shape is not None
    assert sorted(t.name for t in shape.tensors) == ["lm_head.weight", "model.embed_tokens.weight"]
    assert shape.total == 2 * 16 * 8
    # A classifier gets a two-label head in place of the LM head.
    classifier = model_shape(tmp_path, "SEQ_CLS")
    assert classifier is not None and classifier.total == 16 * 8 + 2 * 8


def test_a_directory_without_safetensors_has_no_shape(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    torch.save({}, tmp_path / "pytorch_model.bin")
    assert read_tensors(tmp_path) is None
    assert model_shape(tmp_path) is None
