"""The model pool reads a LoRA adapter of a shared base on the loader thread (prefetch); attaching it
on the generation thread reads nothing from disk, so a large adapter's load never stalls generation."""

from __future__ import annotations

from pathlib import Path

import torch

from api.config import Settings
from api.inference.schemas import BackendTarget
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.inference.conftest import random_lora_artifact
from worker.inference.models import ModelPool


def test_a_prefetched_adapter_attaches_without_reading_its_files(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    ModelStore(settings.models_path).import_directory(tiny_model_dir, TINY_MODEL)
    artifact = random_lora_artifact(settings, tiny_model_dir, "ftjob-prefetch", seed=11)
    target = BackendTarget(base_model=TINY_MODEL, artifact_dir=str(artifact))
    fresh = ModelPool(ModelStore(settings.models_path), settings.artifacts_path, max_adapters=2)
    expected = _logits(fresh.get("ft:fresh", target))  # loaded the plain way, straight from disk

    pool = ModelPool(ModelStore(settings.models_path), settings.artifacts_path, max_adapters=2)
    pool.prefetch("ft:prefetch", target)
    (artifact / "adapter_model.safetensors").unlink()  # what get needs was read already
    servable = pool.get("ft:prefetch", target)
    assert servable.adapter_name is not None and servable.shared
    assert torch.allclose(_logits(servable), expected, atol=1e-5)
    base = pool.get(TINY_MODEL, None)
    assert not torch.allclose(_logits(base), expected, atol=1e-3)  # the adapter is really in use


def _logits(servable) -> torch.Tensor:  # type: ignore[no-untyped-def]
    ids = servable.tokenizer("What colour is a lime?", return_tensors="pt")
    with servable.active() as model, torch.no_grad():
        return model(**ids).logits
