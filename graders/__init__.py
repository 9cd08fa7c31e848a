"""Graders: OpenAI's grader types, field for field, and `grade(grader, sample, item)`.

A library of its own, without torch and without Tunery's API or worker: the API's graders routes,
reinforcement fine-tuning's reward and evals all grade through it.
"""

from graders.grade import Context, grade, item_fields, template_paths, validate
from graders.results import GradeErrors, GradeResult
from graders.types import Grader, grader_json, parse_grader

__all__ = [
    "Context",
    "GradeErrors",
    "GradeResult",
    "Grader",
    "grade",
    "grader_json",
    "item_fields",
    "parse_grader",
    "template_paths",
    "validate",
]
