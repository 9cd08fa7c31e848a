"""A model directory's tensors (names, shapes, dtypes) read from its safetensors headers.

Only each shard's JSON header is read (a few KB), never a weight and never torch, so the API can
answer estimates and admission questions about a 70B base without the memory or the libraries.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from catalog.estimate import ModelShape, Tensor

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def shard_files(directory: Path) -> list[Path] | None:
    """The shards that hold the model's weights; None when it has no safetensors."""
    index = directory / INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / shard for shard in shards]
    if (directory / SINGLE).is_file():
        return [directory / SINGLE]
    return None


def header(file: Path) -> dict[str, Any]:
    with file.open("rb") as stream:
        # A safetensors file starts with the little-endian length of its JSON header, then the header.
        (length,) = struct.unpack("<Q", stream.read(8))
        return dict(json.loads(stream.read(length)))


def read_tensors(directory: Path) -> dict[str, Tensor] | None:
    """Every tensor of every shard by name; None when the directory holds no safetensors."""
    files = shard_files(directory)
    if files is None:
        return None
    found: dict[str, Tensor] = {}
    for file in files:
        for name, entry in header(file).items():
            if name != "__metadata__":
                found[name] = Tensor(name, tuple(entry["shape"]), entry["dtype"])
    return found


def model_shape(directory: Path, task: str = "CAUSAL_LM") -> ModelShape | None:
    """The shape the estimate works from: config.json plus the headers; None without safetensors."""
    tensors = read_tensors(directory)
    if tensors is None:
        return None
    config = json.loads((directory / "config.json").read_text())
    return ModelShape.read(config, tensors.values(), task)
