"""The training spec and recipe as the worker writes them, old and new, and the precision choice."""

from __future__ import annotations

import pytest

from worker.training.precision import resolve_precision
from worker.training.spec import Recipe, TrainingSpec

# A spec as the walking skeleton's worker wrote it: none of the newer fields.
OLD_SPEC = {
    "job_id": "ftjob-old",
    "base_model_dir": "/models/base",
    "training_file": "/data/train.jsonl",
    "output_dir": "/out",
    "n_epochs": 3,
    "batch_size": 4,
    "learning_rate": 2e-4,
    "seed": 1,
    "validation_file": None,
    "method": "supervised",
    "recipe": {
        "type": "lora",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "max_seq_length": 1024,
    },
}


class TestSpec:
    def test_an_old_spec_still_loads_with_the_new_defaults(self):
        spec = TrainingSpec.from_dict(OLD_SPEC)

        assert spec.recipe == Recipe()
        assert spec.beta == 0.1 and spec.labels is None and spec.resume_from is None
        assert spec.checkpoint_every_steps is None and spec.checkpoint_every_minutes is None

    def test_round_trips_through_its_dict(self):
        spec = TrainingSpec.from_dict(
            {**OLD_SPEC, "method": "dpo", "beta": 0.3, "recipe": {"type": "qlora", "packing": True}}
        )
        assert TrainingSpec.from_dict(spec.to_dict()) == spec

    def test_recipe_nulls_mean_the_defaults(self):
        recipe = Recipe.from_dict(
            {"type": "ia3", "lora_r": None, "num_virtual_tokens": None, "packing": True}
        )
        assert recipe == Recipe(type="ia3", packing=True)

    def test_unknown_recipe_field_is_refused_naming_it(self):
        with pytest.raises(ValueError, match="unknown field\\(s\\) lora_rank"):
            Recipe.from_dict({"lora_rank": 4})

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"method": "ppo"}, "method must be one of"),
            ({"beta": 0}, "beta must be positive"),
            ({"labels": ["only"]}, "at least two distinct labels"),
            ({"checkpoint_every_steps": 0}, "checkpoint_every_steps must be at least 1"),
            ({"recipe": {"type": "adapter"}}, "recipe.type must be one of"),
            ({"recipe": {"precision": "int4"}}, "recipe.precision must be one of"),
        ],
    )
    def test_invalid_values_are_refused_with_what_to_change(self, changes, message):
        with pytest.raises(ValueError, match=message):
            TrainingSpec.from_dict({**OLD_SPEC, **changes})

    def test_artifact_form_follows_the_recipe_type(self):
        assert Recipe(type="qlora").is_peft and Recipe(type="prompt_tuning").is_peft
        assert not any(Recipe(type=t).is_peft for t in ("full", "freeze", "bitfit"))


class TestPrecision:
    def test_auto_is_fp32_on_cpu(self):
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CPU-only check")
        precision = resolve_precision("auto")
        assert precision.name == "fp32" and precision.warning is None

    @pytest.mark.parametrize("requested", ["bf16", "fp16"])
    def test_half_precision_on_cpu_falls_back_to_fp32_with_a_warning(self, requested):
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CPU-only check")
        precision = resolve_precision(requested)
        assert precision.name == "fp32"
        assert precision.warning == f"precision {requested} is not available on CPU; training in fp32 instead"
