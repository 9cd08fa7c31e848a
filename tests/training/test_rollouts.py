"""Which engine samples GRPO's rollouts: vLLM only on CUDA with vllm importable and a recipe whose
weights copy into it; the trainer's own model everywhere else (this machine: no CUDA)."""

from __future__ import annotations

import dataclasses

import pytest
from trl import GRPOConfig

from catalog.recipes import RECIPE_TYPE_NAMES
from worker.training.rollouts import VLLM_RECIPES, choose, detect


@pytest.mark.parametrize("recipe_type", RECIPE_TYPE_NAMES)
def test_vllm_is_chosen_only_with_cuda_vllm_and_a_recipe_it_can_take(recipe_type: str) -> None:
    assert not choose(recipe_type, cuda=False, vllm_importable=True).use_vllm
    assert not choose(recipe_type, cuda=True, vllm_importable=False).use_vllm
    on_gpu = choose(recipe_type, cuda=True, vllm_importable=True)
    assert on_gpu.use_vllm == (recipe_type in VLLM_RECIPES)
    if not on_gpu.use_vllm:
        assert recipe_type in on_gpu.reason


def test_quantized_and_soft_prompt_recipes_sample_on_their_own_model_even_on_a_gpu() -> None:
    for recipe_type in ("qlora", "lora_int8", "prefix_tuning", "prompt_tuning"):
        assert not choose(recipe_type, cuda=True, vllm_importable=True).use_vllm


def test_the_vllm_choice_is_trls_colocate_mode_in_grpo_configs_own_fields() -> None:
    config = choose("lora", cuda=True, vllm_importable=True).config()
    assert config["use_vllm"] is True and config["vllm_mode"] == "colocate"
    assert set(config) <= {field.name for field in dataclasses.fields(GRPOConfig)}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the choice on a machine without CUDA")
def test_a_machine_without_cuda_samples_on_the_trainers_model() -> None:
    chosen = detect("lora")
    assert not chosen.use_vllm and "no CUDA" in chosen.reason
    assert chosen.config() == {"use_vllm": False}
