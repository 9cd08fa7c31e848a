"""The base-model store: a directory of Hugging Face model directories, one per model id.

A model id is its path under the store ("SmolLM2-135M-Instruct", or "org/name"). A directory is a
model once it holds config.json; imports write elsewhere first and rename, so a half-copied model
is never listed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")


class InvalidModelId(ValueError):
    pass


@dataclass(frozen=True)
class BaseModelEntry:
    id: str
    path: Path
    created: int


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
