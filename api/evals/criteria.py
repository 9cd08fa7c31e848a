"""Testing criteria: the graders of graders/, read as the graders routes read them, plus what evals add.

Each criterion is a grader object (string_check, text_similarity, python, score_model, label_model,
multi) with OpenAI's template syntax. Evals add `pass_threshold` (required for text_similarity, as
OpenAI's evals require it) and a name that tells the criterion apart in a run's results.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.auth.service import Caller
from api.config import Settings
from api.errors import InvalidRequest
from api.graders import judge
from api.graders import service as graders
from api.models.store import ModelStore
from graders import Grader, GradeResult, grader_json, item_fields, parse_grader
from graders.types import ScoreModelGrader, TextSimilarityGrader


def read_criteria(
    session: Session,
    settings: Settings,
    store: ModelStore,
    caller: Caller,
    values: list[dict[str, Any]],
    item_schema: dict[str, Any],
) -> list[dict[str, Any]]:
    """The criteria as stored, or a 400 naming the field (`testing_criteria.1.operation`)."""
    names: set[str] = set()
    stored = []
    for index, value in enumerate(values):
        param = f"testing_criteria.{index}"
        grader = graders.read_grader(value, param=param)
        if isinstance(grader, TextSimilarityGrader) and grader.pass_threshold is None:
            raise InvalidRequest(
                f"{param}.pass_threshold is required: the similarity at which a sample passes",
                param=f"{param}.pass_threshold",
                code="invalid_grader",
            )
        if grader.name in names:
            raise InvalidRequest(
                f"{param}.name {grader.name!r} is taken by another criterion: each needs its own name",
                param=f"{param}.name",
                code="invalid_grader",
            )
        names.add(grader.name)
        _check_item_fields(grader, item_schema, param)
        judge.check_judges(session, settings, store, caller, grader, param)
        stored.append(grader_json(grader))
    return stored


def graders_of(criteria: list[dict[str, Any]]) -> list[Grader]:
    return [parse_grader(value) for value in criteria]


def passed(grader: Grader, result: GradeResult) -> bool:
    """Against pass_threshold where the criterion has one; else at its full score (1, or the top of a
    score_model's range): string_check and label_model pass exactly when they give 1."""
    if result.passed is not None:
        return result.passed
    top = grader.score_range()[1] if isinstance(grader, ScoreModelGrader) else 1.0
    return result.reward >= top


def _check_item_fields(grader: Grader, item_schema: dict[str, Any], param: str) -> None:
    """A template naming an item field the schema does not define could never be filled."""
    properties = item_schema.get("properties")
    if not isinstance(properties, dict) or item_schema.get("additionalProperties", True) is not False:
        return
    for field in sorted(item_fields(grader)):
        if field.split(".")[0] not in properties:
            raise InvalidRequest(
                f"{param} reads {{{{item.{field}}}}}, but data_source_config.item_schema defines no "
                f"property {field.split('.')[0]!r}",
                param=param,
                code="invalid_grader",
            )
