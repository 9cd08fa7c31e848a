"""The `recipe` a job request may carry (Tunery's extension, `extra_body={"recipe": {...}}`).

The request's view of catalog.recipes.Recipe, built from it field by field: the same fields,
ranges, defaults and descriptions, but a field that the recipe type does not read is refused when
given, naming the field (a `lora_r` on an `ia3` job would otherwise be stored, shown back, and
silently do nothing), and it is null in the dump. Every field that applies has its value, defaults
filled in, so a job is reproducible from its record; the trainer reads that dump back with
`Recipe.from_dict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from catalog.methods import base_learning_rate
from catalog.recipes import PER_TYPE_FIELDS, Recipe, distribution_problem

__all__ = ["PER_TYPE_FIELDS", "RecipeIn", "base_learning_rate"]


class _RecipeRequest(BaseModel):
    """The rules of the request's view; its fields come from Recipe (below)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator(*PER_TYPE_FIELDS, mode="after", check_fields=False)
    @classmethod
    def _applies_to_type(cls, value: object, info: ValidationInfo) -> object:
        recipe_type = info.data.get("type")
        field_name = info.field_name or ""
        types = PER_TYPE_FIELDS[field_name]
        if value is not None and recipe_type is not None and recipe_type not in types:
            applies_to = ", ".join(types)
            raise ValueError(
                f"{field_name} does not apply to recipe type {recipe_type!r}; it applies to {applies_to}"
            )
        return value

    @model_validator(mode="after")
    def _fill_type_defaults(self) -> Any:
        recipe_type = getattr(self, "type")  # noqa: B009 (the field is made below)
        for field_name, types in PER_TYPE_FIELDS.items():
            if recipe_type in types and getattr(self, field_name) is None:
                setattr(self, field_name, Recipe.model_fields[field_name].default)
        # The fields are made below (mypy sees only this base class).
        distribution = [
            getattr(self, name)
            for name in ("distributed", "num_gpus", "num_nodes", "fsdp_cpu_offload", "type")
        ]
        problem = distribution_problem(*distribution)
        if problem:
            raise ValueError(problem)
        return self


def _request_field(name: str, info: FieldInfo) -> tuple[Any, FieldInfo]:
    if name not in PER_TYPE_FIELDS:
        return info.annotation, info
    # Same constraints and description; absent means "the type's default", or null where it does not apply.
    return info.annotation | None, FieldInfo.merge_field_infos(info, default=None)  # type: ignore[operator]


if TYPE_CHECKING:
    RecipeIn = Recipe
else:
    RecipeIn = create_model(
        "RecipeIn",
        __base__=_RecipeRequest,
        __doc__="How to train: which weights learn (`type`) and the settings of the run.",
        **{name: _request_field(name, info) for name, info in Recipe.model_fields.items()},
    )
