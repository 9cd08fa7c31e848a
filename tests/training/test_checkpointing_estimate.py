"""gradient_checkpointing "auto" on a GPU compares the GPU's free memory with the memory estimate of
the run without checkpointing: the trainer reads the base's safetensors headers itself and gets the
figure the estimates endpoint gives."""

from __future__ import annotations

from pathlib import Path

from api.estimates.service import model_shape
from api.models.store import ModelStore
from catalog.estimate import estimate_memory
from catalog.recipes import Recipe
from tests.conftest import TINY_MODEL
from worker.training.checkpointing import estimated_bytes, resolve_gradient_checkpointing


def test_the_trainer_estimates_what_the_api_estimates(tiny_model_dir: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.import_directory(tiny_model_dir, TINY_MODEL)
    entry = store.get(TINY_MODEL)
    assert entry is not None
    shape = model_shape(entry, "supervised")
    assert shape is not None
    for recipe in (Recipe(type="lora"), Recipe(type="full"), Recipe(type="qlora", max_seq_length=256)):
        api_figure = estimate_memory(
            recipe, shape, precision="bf16", batch_size=4, gradient_checkpointing=False
        ).total_bytes_per_gpu
        trainer_figure = estimated_bytes(
            tiny_model_dir, recipe, task="CAUSAL_LM", precision="bf16", batch_size=4
        )
        assert trainer_figure == api_figure > 0


def test_auto_turns_checkpointing_on_only_when_the_estimate_does_not_fit(tiny_model_dir: Path) -> None:
    needed = estimated_bytes(tiny_model_dir, Recipe(), task="CAUSAL_LM", precision="bf16", batch_size=8)
    assert needed is not None
    short = resolve_gradient_checkpointing("auto", use_cuda=True, needed_bytes=needed, free_bytes=needed - 1)
    roomy = resolve_gradient_checkpointing("auto", use_cuda=True, needed_bytes=needed, free_bytes=needed * 2)
    assert short.enabled and not roomy.enabled
    assert (
        estimated_bytes(tiny_model_dir.parent, Recipe(), task="CAUSAL_LM", precision="bf16", batch_size=8)
        is None
    )
