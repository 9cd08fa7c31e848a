"""OpenAI's grader objects, field for field (openai.types.graders), as request and stored shapes.

Every grader has a `type` and a `name`; the union `Grader` is told apart by `type`. `multi` holds its
graders under names that its `calculate_output` formula uses; OpenAI's SDKs type `graders` as one
grader, its documentation as a name -> grader map: both are taken, one grader standing under its own
name. Unknown fields are refused so that a typo is an error that names it, not a silent default.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

SimilarityMetric = Literal[
    "cosine",
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]
SIMILARITY_METRICS: tuple[str, ...] = get_args(SimilarityMetric)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StringCheckGrader(_Shape):
    """Compares `input` with `reference`: 1.0 when the operation holds, else 0.0."""

    type: Literal["string_check"]
    name: str
    input: str
    """The text checked; may hold templates."""
    reference: str
    """The text it is checked against; may hold templates."""
    operation: Literal["eq", "ne", "like", "ilike"]
    """eq, ne: exact (in)equality; like: `reference` is contained in `input`; ilike: the same, any case."""


class TextSimilarityGrader(_Shape):
    """A similarity metric of `input` against `reference`, from 0 to 1."""

    type: Literal["text_similarity"]
    name: str
    input: str
    reference: str
    evaluation_metric: SimilarityMetric
    pass_threshold: float | None = None
    """Evals' field: the score at which a sample passes; the reward is the score either way."""


class PythonGrader(_Shape):
    """`source` defines `grade(sample, item) -> float`, run in Tunery's sandbox."""

    type: Literal["python"]
    name: str
    source: str
    image_tag: str | None = None
    """OpenAI's image of the grader's environment; Tunery runs one environment and takes only None."""
    pass_threshold: float | None = None


class ContentText(_Shape):
    type: Literal["input_text", "output_text"]
    text: str


Content = str | ContentText | list[str | ContentText]


class GraderMessage(_Shape):
    """A message sent to a judging model; its text may hold templates."""

    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    type: Literal["message"] | None = None


class SamplingParams(_Shape):
    max_completions_tokens: int | None = Field(default=None, ge=1)
    """Spelled as OpenAI spells it."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    reasoning_effort: str | None = None
    """Accepted as OpenAI's; the open models Tunery serves have no such setting, so it changes nothing."""


class ScoreModelGrader(_Shape):
    """A model served by Tunery reads `input` and answers a number within `range`: the reward."""

    type: Literal["score_model"]
    name: str
    model: str
    input: list[GraderMessage] = Field(min_length=1)
    range: list[float] | None = None
    """Two numbers, low and high; [0, 1] when not given."""
    sampling_params: SamplingParams | None = None
    pass_threshold: float | None = None

    @field_validator("range")
    @classmethod
    def _two_numbers(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 2 or value[0] >= value[1]):
            raise ValueError("range must be two numbers, the low one first")
        return value

    def score_range(self) -> tuple[float, float]:
        low, high = self.range or (0.0, 1.0)
        return float(low), float(high)


class LabelModelGrader(_Shape):
    """A model served by Tunery picks one of `labels`; the reward is 1 for one of `passing_labels`."""

    type: Literal["label_model"]
    name: str
    model: str
    input: list[GraderMessage] = Field(min_length=1)
    labels: list[str] = Field(min_length=1)
    passing_labels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _passing_among_labels(self) -> LabelModelGrader:
        extra = [label for label in self.passing_labels if label not in self.labels]
        if extra:
            raise ValueError(f"passing_labels {extra} are not among labels {self.labels}")
        return self


SingleGrader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader,
    Field(discriminator="type"),
]


class MultiGrader(_Shape):
    """Named graders, combined by `calculate_output`, a formula over their names."""

    type: Literal["multi"]
    name: str
    graders: dict[str, SingleGrader]
    calculate_output: str

    @field_validator("graders", mode="before")
    @classmethod
    def _one_grader_under_its_name(cls, value: Any) -> Any:
        # The SDKs type `graders` as one grader: it stands under its own name.
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return {str(value.get("name", "grader")): value}
        return value

    @field_validator("graders")
    @classmethod
    def _some_graders(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a multi grader needs at least one grader")
        return value


Grader = Annotated[
    StringCheckGrader
    | TextSimilarityGrader
    | PythonGrader
    | ScoreModelGrader
    | LabelModelGrader
    | MultiGrader,
    Field(discriminator="type"),
]
GRADER_TYPES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")
# OpenAI takes label_model only inside multi for fine-tuning; Tunery takes it anywhere (a reward of 0 or 1).

MODEL_GRADERS = ("score_model", "label_model")
"""The types that ask a model (a judge) for their reward."""

_GRADER = TypeAdapter(Grader)


def grader_types(grader: Any) -> list[str]:
    """The types of a grader and of the graders a multi grader holds."""
    if isinstance(grader, MultiGrader):
        return [grader.type, *(part.type for part in grader.graders.values())]
    return [grader.type]


def model_graders(grader: Any) -> list[tuple[str, ScoreModelGrader | LabelModelGrader]]:
    """The graders that ask a judge, each with its path under the grader ("" or "graders.<name>.")."""
    if isinstance(grader, MultiGrader):
        return [
            (f"graders.{name}.", part)
            for name, part in grader.graders.items()
            if isinstance(part, ScoreModelGrader | LabelModelGrader)
        ]
    return [("", grader)] if isinstance(grader, ScoreModelGrader | LabelModelGrader) else []


def parse_grader(value: Any) -> Any:
    """A grader object from its JSON form; raises pydantic.ValidationError naming the field."""
    return _GRADER.validate_python(value)


def grader_json(grader: Any) -> dict[str, Any]:
    return _GRADER.dump_python(grader, mode="json", exclude_none=True)
