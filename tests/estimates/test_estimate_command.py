"""`tunery estimate MODEL --recipe JSON` prints the estimate as tables, as a user runs it."""

from __future__ import annotations

import json

from api.config import Settings
from api.models.store import ModelStore
from tests.cli.test_cli import tunery
from tests.conftest import TINY_MODEL
from tests.estimates.pools import GIB, register_worker


def test_estimate_prints_memory_per_dtype_and_the_pools(app, settings: Settings, tiny_model_dir) -> None:
    register_worker(app.state.sessionmaker, "big:1", "big", 2, 80 * GIB)
    assert ModelStore(settings.models_path).get(TINY_MODEL) is not None

    result = tunery(settings, "estimate", TINY_MODEL, "--recipe", json.dumps({"type": "full"}))

    out = result.stdout
    assert f"Memory per GPU for training {TINY_MODEL} with full" in out
    assert "trainable (100.00%)" in out
    for dtype in ("bf16", "fp16", "fp32"):
        assert f"│ {dtype} " in out
    assert "│ big " in out and "2 x 80.0 GiB" in out


def test_a_bad_recipe_is_refused_naming_the_field(settings: Settings, app) -> None:
    import subprocess

    try:
        tunery(settings, "estimate", TINY_MODEL, "--recipe", json.dumps({"type": "lora", "num_gpus": 2}))
    except subprocess.CalledProcessError as error:
        assert error.returncode == 2
        assert "num_gpus" in error.stderr
    else:
        raise AssertionError("a recipe of 2 GPUs without ddp or fsdp was accepted")
