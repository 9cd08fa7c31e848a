"""Graders as the API offers them: read a grader object, refuse a bad one naming its field, grade.

The same reading serves job create (a reinforcement method's grader) and the graders routes, so a
grader that `graders.validate` accepts is one a job accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.config import Settings
from api.errors import InvalidRequest, describe_validation_error
from graders import Context, Grader, GradeResult, grade, parse_grader, validate
from graders.formula import FormulaError
from graders.judges import Judge
from graders.sandbox import Limits, Sandbox
from graders.templates import TemplateError
from graders.types import GRADER_TYPES


def read_grader(value: Any, param: str = "grader") -> Grader:
    """The grader object, or a 400 that names the field (`grader.graders.name.operation`)."""
    try:
        grader = parse_grader(value)
    except ValidationError as error:
        field, message = describe_validation_error([_without_tags(e, param) for e in error.errors()])
        raise InvalidRequest(message, param=field or param, code="invalid_grader") from None
    try:
        validate(grader)
    except (TemplateError, FormulaError, ValueError) as error:
        raise InvalidRequest(f"Invalid {param}: {error}", param=param, code="invalid_grader") from None
    return grader


def sandbox(settings: Settings) -> Sandbox:
    """The python graders' sandbox: Tunery's data (and model store) out of sight, the configured limits."""
    limits = Limits(
        cpu_seconds=settings.grader_cpu_seconds,
        memory_bytes=settings.grader_memory_mb << 20,
        wall_seconds=settings.grader_wall_seconds,
    )
    hidden: list[Path] = [settings.data_path]
    if not settings.models_path.is_relative_to(settings.data_path):
        hidden.append(settings.models_path)
    return Sandbox(limits, hidden=hidden)


def run(settings: Settings, judge: Judge, grader: Grader, model_sample: str, item: Any) -> GradeResult:
    if item is not None and not isinstance(item, dict):
        raise InvalidRequest(
            "item must be a JSON object: the dataset line graders read as item", param="item"
        )
    return grade(grader, model_sample, item, Context(judge=judge, sandbox=sandbox(settings)))


def _without_tags(error: Any, param: str) -> dict[str, Any]:
    # pydantic puts the discriminator's value in the location ("grader.string_check.operation"): not a field.
    loc = [part for part in error.get("loc", ()) if part not in GRADER_TYPES]
    return {**error, "loc": (param, *loc)}
