"""grade(grader, sample, item) -> GradeResult: one sample graded by any of OpenAI's grader types.

`Context` carries what a grader may need from outside: a judge for model graders, an embedding
function for cosine similarity, the sandbox for python graders. A failure on one sample (a template
naming what is not there, a grader's exception, a judge that does not answer) is a reward of 0 with
the error in the result, as OpenAI reports it; only a grader that is itself invalid raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graders import formula, judges, similarity
from graders.embedding import EmbeddingFailed, embed_in_child
from graders.results import GradeResult
from graders.sandbox import Sandbox, SandboxError
from graders.templates import TemplateError, placeholders, render, sample_of
from graders.types import (
    Grader,
    GraderMessage,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)
from graders.wordnet import WordNetMissing


def _no_judge(model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> judges.JudgeAnswer:
    raise judges.JudgeFailed(
        "no judging model is reachable here (model graders need Tunery's inference backend)"
    )


@dataclass(frozen=True)
class Context:
    judge: judges.Judge = _no_judge
    embed: similarity.Embed = embed_in_child
    sandbox: Sandbox = field(default_factory=Sandbox)


def grade(
    grader: Grader, sample: str | dict[str, Any], item: dict[str, Any] | None, context: Context | None = None
) -> GradeResult:
    """Grade one model answer (its text, or a ready `sample` namespace) against one dataset line."""
    namespaces = {"sample": sample_of(sample) if isinstance(sample, str) else sample, "item": item or {}}
    started = time.monotonic()
    result = _grade(grader, namespaces, context or Context())
    result.execution_time = time.monotonic() - started
    return result


def validate(grader: Grader) -> None:
    """Raise ValueError for what no sample could fix: a malformed template, a formula naming no grader."""
    for _ in template_paths(grader):
        pass
    if isinstance(grader, MultiGrader):
        formula.check(grader.calculate_output, set(grader.graders))
    if isinstance(grader, PythonGrader):
        if grader.image_tag is not None:
            raise ValueError(
                "image_tag: Tunery runs python graders in its one sandbox; leave image_tag unset"
            )
        try:
            compile(grader.source, "grader.py", "exec")
        except SyntaxError as error:
            raise ValueError(f"source does not compile: {error.msg} (line {error.lineno})") from None
        if "def grade" not in grader.source:
            raise ValueError("source must define grade(sample, item)")


def template_paths(grader: Grader) -> Iterator[list[str]]:
    """Every path the grader's templates name, e.g. ["item", "answer"]."""
    for text in _templates(grader):
        yield from placeholders(text)


def item_fields(grader: Grader) -> set[str]:
    """The fields of a dataset line that the grader's templates read, dotted where nested ("a.b")."""
    return {".".join(path[1:]) for path in template_paths(grader) if path[0] == "item" and len(path) > 1}


def _templates(grader: Grader) -> Iterator[str]:
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        yield grader.input
        yield grader.reference
    elif isinstance(grader, ScoreModelGrader | LabelModelGrader):
        yield from _message_texts(grader.input)
    elif isinstance(grader, MultiGrader):
        for part in grader.graders.values():
            yield from _templates(part)


def _message_texts(messages: list[GraderMessage]) -> Iterator[str]:
    for message in messages:
        parts = message.content if isinstance(message.content, list) else [message.content]
        yield from (part if isinstance(part, str) else part.text for part in parts)


def _grade(grader: Grader, namespaces: dict[str, Any], context: Context) -> GradeResult:
    result = GradeResult(name=grader.name, type=grader.type, reward=0.0)
    try:
        if isinstance(grader, MultiGrader):
            return _multi(grader, namespaces, context)
        result.reward = _single(grader, namespaces, context, result)
        result.scores = {grader.name: result.reward}
    except TemplateError as error:
        _fail(result, "invalid_variable_error", str(error))
    except SandboxError as error:
        if error.kind == "server":
            _fail(result, "python_grader_server_error", str(error))
            result.errors.python_grader_server_error_type = "sandbox_unavailable"
        else:
            _fail(result, "python_grader_runtime_error", str(error))
            result.errors.python_grader_runtime_error_details = str(error)
    except judges.JudgeUnreadable as error:
        _fail(result, "model_grader_parse_error", str(error))
    except judges.JudgeFailed as error:
        _fail(result, "model_grader_server_error", str(error))
        result.errors.model_grader_server_error_details = str(error)
    except (EmbeddingFailed, WordNetMissing) as error:
        _fail(result, "other_error", str(error))
    threshold = getattr(grader, "pass_threshold", None)
    if threshold is not None:
        result.passed = result.reward >= threshold
    return result


def _single(grader: Grader, namespaces: dict[str, Any], context: Context, result: GradeResult) -> float:
    if isinstance(grader, StringCheckGrader):
        return _string_check(
            grader.operation, render(grader.input, namespaces), render(grader.reference, namespaces)
        )
    if isinstance(grader, TextSimilarityGrader):
        text, reference = render(grader.input, namespaces), render(grader.reference, namespaces)
        return similarity.score(grader.evaluation_metric, text, reference, context.embed)
    if isinstance(grader, PythonGrader):
        return context.sandbox.run(grader.source, namespaces["sample"], namespaces["item"])
    if isinstance(grader, ScoreModelGrader):
        answer = _ask(grader, [judges.score_prompt(grader)], namespaces, context, result)
        return judges.read_score(answer, grader)
    if isinstance(grader, LabelModelGrader):
        label = judges.read_label(
            _ask(grader, [judges.label_prompt(grader)], namespaces, context, result), grader
        )
        result.scores["label"] = label
        return 1.0 if label in grader.passing_labels else 0.0
    raise TypeError(f"not a single grader: {grader.type}")


def _ask(
    grader: ScoreModelGrader | LabelModelGrader,
    instruction: list[dict[str, str]],
    namespaces: dict[str, Any],
    context: Context,
    result: GradeResult,
) -> str:
    answer = context.judge(
        grader.model, instruction + judges.messages(grader.input, namespaces), judges.sampling(grader)
    )
    usage = result.token_usage.setdefault(grader.model, {})
    for name, count in answer.usage.items():
        usage[name] = usage.get(name, 0) + count
    return answer.text


def _string_check(operation: str, text: str, reference: str) -> float:
    if operation == "eq":
        return float(text == reference)
    if operation == "ne":
        return float(text != reference)
    if operation == "like":
        return float(reference in text)
    return float(reference.lower() in text.lower())  # ilike


def _multi(grader: MultiGrader, namespaces: dict[str, Any], context: Context) -> GradeResult:
    result = GradeResult(name=grader.name, type=grader.type, reward=0.0)
    for name, part in grader.graders.items():
        graded = _grade(part, namespaces, context)
        result.sub_rewards[name] = graded.reward
        result.errors.merge(graded.errors)
        for model, usage in graded.token_usage.items():
            total = result.token_usage.setdefault(model, {})
            for key, count in usage.items():
                total[key] = total.get(key, 0) + count
    try:
        result.reward = formula.evaluate(grader.calculate_output, result.sub_rewards)
    except formula.FormulaError as error:
        _fail(result, "formula_parse_error", str(error))
    result.scores = dict(result.sub_rewards)
    return result


def _fail(result: GradeResult, flag: str, message: str) -> None:
    result.reward = 0.0
    setattr(result.errors, flag, True)
    result.errors.details.append(f"{result.name}: {message}")
