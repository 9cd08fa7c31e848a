"""The speed settings of a run: activation checkpointing only where memory needs it, Liger only
where CUDA and the package are, torch.compile and length grouping on request."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.fine_tuning.recipe_schema import RecipeIn
from tests.training.trainer_runs import toy_spec, train_in_process
from worker.training.checkpointing import resolve_gradient_checkpointing
from worker.training.spec import Recipe

GIB = 2**30


class TestCheckpointingChoice:
    def test_auto_is_off_on_cpu(self):
        assert not resolve_gradient_checkpointing("auto", use_cuda=False).enabled

    def test_auto_on_a_gpu_is_on_only_when_its_free_memory_is_short(self):
        short = resolve_gradient_checkpointing(
            "auto", use_cuda=True, needed_bytes=8 * GIB, free_bytes=6 * GIB
        )
        ample = resolve_gradient_checkpointing(
            "auto", use_cuda=True, needed_bytes=8 * GIB, free_bytes=60 * GIB
        )
        assert short.enabled and "short" in short.reason
        assert not ample.enabled

    def test_auto_without_figures_on_a_gpu_takes_the_safe_side(self):
        assert resolve_gradient_checkpointing("auto", use_cuda=True).enabled

    @pytest.mark.parametrize("requested", [True, False])
    def test_an_explicit_choice_is_kept_anywhere(self, requested: bool):
        for use_cuda in (False, True):
            choice = resolve_gradient_checkpointing(
                requested, use_cuda=use_cuda, needed_bytes=GIB, free_bytes=100 * GIB
            )
            assert choice.enabled is requested

    def test_the_recipe_takes_auto_true_or_false_and_nothing_else(self):
        assert Recipe().gradient_checkpointing == "auto"
        assert RecipeIn(gradient_checkpointing=True).model_dump()["gradient_checkpointing"] is True
        with pytest.raises(ValidationError):
            RecipeIn(gradient_checkpointing="sometimes")


class TestLiger:
    def test_not_on_cpu(self):
        from worker.training.kernels import use_liger

        assert use_liger("llama", use_cuda=False) == (False, "Liger kernels need CUDA")

    @pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is not None, reason="liger-kernel installed")
    def test_a_gpu_without_the_package_trains_on_the_stock_modules(self):
        from worker.training.kernels import use_liger

        enabled, reason = use_liger("llama", use_cuda=True)
        assert not enabled and "not installed" in reason


class TestTrainerArguments:
    def arguments(self, tmp_path: Path, model_dir, **fields) -> dict:
        from worker.training.precision import resolve_precision
        from worker.training.run import _trainer_arguments

        spec = toy_spec(tmp_path, model_dir, n_train=4, n_epochs=1, **fields)
        return _trainer_arguments(spec, resolve_precision("auto"), False, "adamw_torch", False)

    def test_group_by_length_picks_the_length_grouped_sampler(self, tmp_path: Path, model_dir):
        grouped = self.arguments(tmp_path / "a", model_dir, recipe=Recipe(group_by_length=True))
        default = self.arguments(tmp_path / "b", model_dir)
        assert grouped["train_sampling_strategy"] == "group_by_length"
        assert default["train_sampling_strategy"] == "random"

    def test_dpo_ignores_group_by_length(self, tmp_path: Path, model_dir):
        arguments = self.arguments(
            tmp_path, model_dir, method="dpo", recipe=Recipe(group_by_length=True), beta=0.1
        )
        assert arguments["train_sampling_strategy"] == "random"


class TestRuns:
    def test_a_default_cpu_run_does_not_checkpoint_and_says_why(self, tmp_path: Path, model_dir):
        run = train_in_process(toy_spec(tmp_path, model_dir, n_train=4, n_epochs=1))
        messages = [event["message"] for event in run.of("message")]
        assert "gradient checkpointing off on CPU: memory is not what limits a CPU run" in messages
        # No Liger here (CPU): the stock modules train, and the loss is a real one.
        assert all(loss is not None and loss > 0 for loss in run.losses())

    def test_group_by_length_trains_every_example_once(self, tmp_path: Path, model_dir):
        run = train_in_process(
            toy_spec(tmp_path, model_dir, n_train=8, n_epochs=1, recipe=Recipe(group_by_length=True))
        )
        assert run.of("started")[0]["total_steps"] == 2
        assert run.of("started")[0]["n_examples"] == 8
