"""One item of a run graded: checked against the item schema, its sample generated (completions) or
taken from the item (jsonl), each testing criterion applied. Whatever goes wrong with one item makes
that item `errored`, saying why; the run goes on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.evals import criteria, items
from api.evals.data_sources import CompletionsDataSource, TemplateInput
from graders import Context, Grader, grade
from graders.judges import JudgeAnswer, JudgeFailed, messages
from graders.templates import TemplateError, sample_of

Generate = Callable[[list[dict[str, str]]], JudgeAnswer]
NO_ERROR = {"code": "", "message": ""}


@dataclass(frozen=True)
class Grading:
    """What grading every item of one run needs."""

    graders: list[Grader]
    item_schema: dict[str, Any]
    context: Context
    completions: CompletionsDataSource | None = None
    generate: Generate | None = None


@dataclass
class Graded:
    index: int
    item: dict[str, Any]
    status: str
    sample: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per model (the sampled one, judges): invocation_count and token counts."""


def grade_item(grading: Grading, source: items.SourceItem) -> Graded:
    problem = source.problem or items.schema_problem(grading.item_schema, source.item)
    if problem is not None:
        return _errored(source, "invalid_item", problem)
    graded = Graded(source.index, source.item, "pass", {})
    if grading.completions is not None:
        namespace = _generate(grading, source, graded)
        if namespace is None:
            return graded
    else:
        namespace = items.sample_namespace(source.sample or {})
        graded.sample = _given_sample(namespace)
    statuses = []
    for grader in grading.graders:
        result = grade(grader, namespace, source.item, grading.context)
        passed = criteria.passed(grader, result) and not result.errors.any()
        entry: dict[str, Any] = {
            "name": grader.name,
            "type": grader.type,
            "score": result.reward,
            "passed": passed,
        }
        if result.errors.any():
            entry["error"] = "; ".join(result.errors.details)
            statuses.append("errored")
        else:
            statuses.append("pass" if passed else "fail")
        graded.results.append(entry)
        for model, usage in result.token_usage.items():
            _add_usage(graded.usage, model, usage)
    graded.status = "errored" if "errored" in statuses else "fail" if "fail" in statuses else "pass"
    return graded


def _generate(grading: Grading, source: items.SourceItem, graded: Graded) -> dict[str, Any] | None:
    """The sample of a completions run: the model's answer to the item's messages; None when there is
    none (the item is then errored, and `graded` says why)."""
    data = grading.completions
    assert data is not None and grading.generate is not None
    sampling = data.sampling_params
    base = {
        "model": data.model,
        "max_completion_tokens": sampling.max_completion_tokens
        if sampling and sampling.max_completion_tokens
        else 0,
        "seed": sampling.seed if sampling and sampling.seed is not None else 0,
        "temperature": sampling.temperature if sampling and sampling.temperature is not None else 1.0,
        "top_p": sampling.top_p if sampling and sampling.top_p is not None else 1.0,
    }
    try:
        if isinstance(data.input_messages, TemplateInput):
            prompt = messages(data.input_messages.template, {"item": source.item})
        else:
            prompt = items.referenced_messages(source.item, data.input_messages.item_reference)
    except TemplateError as error:
        _fail(graded, base, [], "invalid_input_messages", str(error))
        return None
    try:
        answer = grading.generate(prompt)
    except JudgeFailed as error:
        _fail(graded, base, prompt, "sample_error", str(error))
        return None
    except (KeyError, IndexError, TypeError, ValueError) as error:  # a 200 that is not a chat completion
        _fail(graded, base, prompt, "sample_error", f"the backend's answer is unreadable: {error!r}")
        return None
    usage = {key: answer.usage.get(key, 0) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    _add_usage(graded.usage, data.model, answer.usage)
    graded.sample = {
        **base,
        "input": prompt,
        "output": [{"role": "assistant", "content": answer.text}],
        "finish_reason": answer.finish_reason or "",
        "usage": {**usage, "cached_tokens": 0},
        "error": NO_ERROR,
    }
    choice = {"index": 0, "message": {"role": "assistant", "content": answer.text}}
    return {**sample_of(answer.text), "model": data.model, "choices": [choice]}


def _given_sample(namespace: dict[str, Any]) -> dict[str, Any]:
    text = namespace.get("output_text")
    return {
        "input": [],
        "output": [{"role": "assistant", "content": text}] if isinstance(text, str) else [],
        "model": str(namespace.get("model", "")),
        "finish_reason": "",
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0},
        "error": NO_ERROR,
        "max_completion_tokens": 0,
        "seed": 0,
        "temperature": 0.0,
        "top_p": 0.0,
    }


def _errored(source: items.SourceItem, code: str, message: str) -> Graded:
    graded = Graded(source.index, source.item, "errored", {})
    _fail(graded, {}, [], code, message)
    return graded


def _fail(
    graded: Graded, base: dict[str, Any], prompt: list[dict[str, str]], code: str, message: str
) -> None:
    graded.status = "errored"
    graded.sample = {
        **_given_sample({}),
        **base,
        "input": prompt,
        "error": {"code": code, "message": message},
    }


def _add_usage(usage: dict[str, dict[str, int]], model: str, counts: dict[str, int]) -> None:
    total = usage.setdefault(model, {"invocation_count": 0})
    total["invocation_count"] += 1
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        total[key] = total.get(key, 0) + int(counts.get(key, 0))
