"""The recipe a job request may carry: validation, defaults, and what the trainer reads back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.fine_tuning.recipe_schema import RecipeIn, base_learning_rate
from worker.training.spec import RECIPE_TYPES, Recipe


def error_fields(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in detail["loc"]) for detail in error.errors()]


class TestDefaults:
    def test_empty_recipe_is_lora_with_every_default_filled(self) -> None:
        dumped = RecipeIn().model_dump()

        assert dumped["type"] == "lora"
        assert dumped["lora_r"] == 8 and dumped["lora_alpha"] == 16 and dumped["lora_dropout"] == 0.05
        assert dumped["target_modules"] == "all-linear"
        assert dumped["max_seq_length"] == 1024 and dumped["precision"] == "auto"
        # Fields of other types do not apply: null, not a value that would look meaningful.
        assert dumped["num_virtual_tokens"] is None and dumped["trainable_layers"] is None

    @pytest.mark.parametrize(
        ("recipe_type", "filled"),
        [
            ("freeze", {"trainable_layers": 2}),
            ("prompt_tuning", {"num_virtual_tokens": 20}),
            ("ia3", {"target_modules": "all-linear"}),
            ("qlora", {"lora_r": 8}),
        ],
    )
    def test_each_type_gets_the_defaults_of_its_own_fields(self, recipe_type: str, filled: dict) -> None:
        dumped = RecipeIn(type=recipe_type).model_dump()
        for name, value in filled.items():
            assert dumped[name] == value

    @pytest.mark.parametrize("recipe_type", RECIPE_TYPES)
    def test_the_trainer_reads_every_dump_back_with_the_same_values(self, recipe_type: str) -> None:
        dumped = RecipeIn(type=recipe_type, max_seq_length=256, packing=True).model_dump()

        recipe = Recipe.from_dict(dumped)

        assert recipe.type == recipe_type
        for name, value in dumped.items():
            if value is not None:
                assert getattr(recipe, name) == value, name

    def test_schema_defaults_are_the_trainer_defaults(self) -> None:
        schema = RecipeIn(type="lora").model_dump()
        trainer = Recipe()
        for name, value in schema.items():
            if value is not None:
                assert getattr(trainer, name) == value, name
        assert RecipeIn(type="freeze").trainable_layers == trainer.trainable_layers
        assert RecipeIn(type="prompt_tuning").num_virtual_tokens == trainer.num_virtual_tokens


class TestRefusals:
    def test_unknown_key_is_an_error_naming_it(self) -> None:
        with pytest.raises(ValidationError) as error:
            RecipeIn.model_validate({"type": "lora", "lora_rank": 4})
        assert error_fields(error.value) == ["lora_rank"]

    def test_unknown_type_is_an_error(self) -> None:
        with pytest.raises(ValidationError) as error:
            RecipeIn.model_validate({"type": "adapter"})
        assert error_fields(error.value) == ["type"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("lora_r", 0),
            ("lora_dropout", 1.0),
            ("max_seq_length", 8),
            ("warmup_ratio", 0.9),
            ("weight_decay", -1),
        ],
    )
    def test_out_of_range_value_is_an_error_naming_the_field(self, field: str, value: object) -> None:
        with pytest.raises(ValidationError) as error:
            RecipeIn.model_validate({"type": "lora", field: value})
        assert error_fields(error.value) == [field]

    @pytest.mark.parametrize(
        ("recipe_type", "field", "value"),
        [
            ("ia3", "lora_r", 4),
            ("full", "target_modules", ["q_proj"]),
            ("lora", "num_virtual_tokens", 10),
            ("qlora", "trainable_layers", 1),
            ("bitfit", "lora_dropout", 0.1),
        ],
    )
    def test_field_of_another_type_is_refused_naming_it(
        self, recipe_type: str, field: str, value: object
    ) -> None:
        with pytest.raises(ValidationError) as error:
            RecipeIn.model_validate({"type": recipe_type, field: value})
        assert error_fields(error.value) == [field]
        assert f"{field} does not apply to recipe type {recipe_type!r}" in str(error.value)

    def test_precision_and_scheduler_are_closed_sets(self) -> None:
        with pytest.raises(ValidationError) as error:
            RecipeIn.model_validate({"precision": "int4", "lr_scheduler": "step"})
        assert sorted(error_fields(error.value)) == ["lr_scheduler", "precision"]


class TestBaseLearningRate:
    def test_lora_trains_at_two_e_minus_four(self) -> None:
        assert base_learning_rate("lora", "supervised") == pytest.approx(2e-4)

    def test_full_fine_tuning_takes_much_smaller_steps_than_adapters(self) -> None:
        assert base_learning_rate("full", "supervised") < base_learning_rate("lora", "supervised") / 10

    def test_dpo_is_gentler_than_supervised(self) -> None:
        for recipe_type in RECIPE_TYPES:
            assert base_learning_rate(recipe_type, "dpo") < base_learning_rate(recipe_type, "supervised")

    def test_every_type_and_method_has_a_rate(self) -> None:
        for recipe_type in RECIPE_TYPES:
            for method in ("supervised", "dpo", "classification", "reinforcement"):
                assert base_learning_rate(recipe_type, method) > 0

    def test_unknown_method_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown method"):
            base_learning_rate("lora", "ppo")
