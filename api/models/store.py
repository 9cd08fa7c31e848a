"""The base-model store: a directory of Hugging Face model directories, one per model id.

A model id is its path under the store ("SmolLM2-135M-Instruct", or "org/name"). A directory is a
model once it holds config.json; imports write elsewhere first and rename, so a half-copied model
is never listed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.estimate import Tensor
from catalog.safetensors_headers import INDEX, read_tensors

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")


class InvalidModelId(ValueError):
    pass


# The output layers a model adds on its backbone; their bias is not a bias term of the layers.
HEAD_PREFIXES = ("lm_head.", "score.", "classifier.")


@dataclass(frozen=True)
class BaseModelEntry:
    id: str
    path: Path
    created: int

    def weight_names(self) -> list[str] | None:
        """The names of the model's tensors, read from its safetensors headers (no torch, no
        weights loaded); None when the directory holds no safetensors to read them from."""
        index = self.path / INDEX
        if index.is_file():
            return sorted(json.loads(index.read_text())["weight_map"])
        tensors = self.tensors()
        return None if tensors is None else sorted(tensors)

    def tensors(self) -> dict[str, Tensor] | None:
        """Every tensor's shape and dtype, from the safetensors headers of all shards (a few KB read
        per shard, no weights); None when the directory holds no safetensors."""
        return read_tensors(self.path)

    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "config.json").read_text()))

    def has_bias_terms(self) -> bool | None:
        """Whether the layers (not the output head) have biases; None when that can't be read."""
        names = self.weight_names()
        if names is None:
            return None
        return any(name.endswith(".bias") and not name.startswith(HEAD_PREFIXES) for name in names)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self) -> list[BaseModelEntry]:
        if not self.root.is_dir():
            return []
        entries = []
        for config in sorted(self.root.glob("*/config.json")) + sorted(self.root.glob("*/*/config.json")):
            model_dir = config.parent
            if model_dir.name.startswith("."):
                continue
            model_id = model_dir.relative_to(self.root).as_posix()
            entries.append(BaseModelEntry(model_id, model_dir, int(config.stat().st_mtime)))
        return entries

    def get(self, model_id: str) -> BaseModelEntry | None:
        if not MODEL_ID.match(model_id):
            return None
        model_dir = self.root / model_id
        config = model_dir / "config.json"
        if not config.is_file():
            return None
        return BaseModelEntry(model_id, model_dir, int(config.stat().st_mtime))

    def staging_dir(self) -> Path:
        """A fresh directory to build a model in before `publish` moves it under its id."""
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=staging))

    def publish(self, staged: Path, model_id: str) -> BaseModelEntry:
        check_model_id(model_id)
        if not (staged / "config.json").is_file():
            raise ValueError(f"{staged} has no config.json: not a Hugging Face model directory")
        target = self.root / model_id
        if target.exists():
            raise FileExistsError(f"model {model_id!r} is already in the store ({target})")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        entry = self.get(model_id)
        assert entry is not None
        return entry

    def import_directory(self, source: Path, model_id: str) -> BaseModelEntry:
        check_model_id(model_id)
        if not (source / "config.json").is_file():
            raise ValueError(f"{source} has no config.json: not a Hugging Face model directory")
        staged = self.staging_dir()
        shutil.copytree(source, staged, dirs_exist_ok=True)
        return self.publish(staged, model_id)


def check_model_id(model_id: str) -> None:
    if not MODEL_ID.match(model_id):
        raise InvalidModelId(
            f"invalid model id {model_id!r}: use letters, digits, '.', '_' and '-', optionally as 'org/name'"
        )
