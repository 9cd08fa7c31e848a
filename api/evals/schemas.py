"""Eval objects as the openai SDK types them (openai.types.eval_*, openai.types.evals), field for field.

Request bodies keep `data_source_config`, `testing_criteria` and `data_source` as JSON objects: the
service reads them (api/evals/criteria.py, data_sources.py) and names the field of a bad one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.request_models import Strict
from api.tables import Eval, EvalOutputItem, EvalRun

MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)]
Name = Annotated[str, StringConstraints(max_length=256)]


class EvalCreate(Strict):
    data_source_config: dict[str, Any]
    """`custom` {item_schema, include_sample_schema}, or Tunery's `file` {file_id}."""
    testing_criteria: list[dict[str, Any]] = Field(min_length=1)
    """Graders (graders/types.py), with `pass_threshold` where OpenAI's evals take one."""
    name: Name | None = None
    metadata: Metadata | None = None


class EvalUpdate(Strict):
    name: Name | None = None
    metadata: Metadata | None = None


class EvalLink(Strict):
    """Tunery's extension to job create: the eval to run once the job succeeds."""

    eval_id: str
    data_source: dict[str, Any]
    """A `completions` data source; its `model` may be left out: the runs fill it in."""


class EvalObject(BaseModel):
    id: str
    """`eval_...`."""
    object: Literal["eval"] = "eval"
    created_at: int
    name: str
    data_source_config: dict[str, Any]
    """Echoed as OpenAI does: its `schema` holds the item's schema under `item` (and `sample`)."""
    testing_criteria: list[dict[str, Any]]
    metadata: dict[str, str] | None = None


class EvalDeleted(BaseModel):
    object: Literal["eval.deleted"] = "eval.deleted"
    deleted: bool = True
    eval_id: str


class RunCreate(Strict):
    data_source: dict[str, Any]
    """`jsonl` {source} or `completions` {source, model, input_messages, sampling_params}."""
    name: Name | None = None
    metadata: Metadata | None = None


class EvalApiError(BaseModel):
    code: str
    message: str


class ResultCounts(BaseModel):
    total: int = 0
    passed: int = 0
    failed: int = 0
    errored: int = 0


class CriterionResult(BaseModel):
    testing_criteria: str
    passed: int = 0
    failed: int = 0


class ModelUsage(BaseModel):
    model_name: str
    invocation_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0


class RunObject(BaseModel):
    id: str
    """`evalrun_...`."""
    object: Literal["eval.run"] = "eval.run"
    eval_id: str
    created_at: int
    name: str
    model: str
    """The model that generated the samples; "" for a jsonl run, whose samples came with the items."""
    status: str
    """queued, in_progress, completed, failed or canceled."""
    data_source: dict[str, Any]
    error: EvalApiError
    """Typed non-null by the SDK: code and message are "" while nothing went wrong."""
    result_counts: ResultCounts
    per_testing_criteria_results: list[CriterionResult]
    per_model_usage: list[ModelUsage]
    report_url: str
    """The ops dashboard's page of the eval, its runs side by side."""
    metadata: dict[str, str] | None = None
    fine_tuning_job_id: str | None = None
    """Tunery's extension: the fine-tuning job whose success started this run."""

    @classmethod
    def of(cls, run: EvalRun, eval_id: str, report_url: str) -> RunObject:
        return cls(
            id=run.id,
            eval_id=eval_id,
            created_at=run.created_at,
            name=run.name,
            model=run.model or "",
            status=run.status,
            data_source=run.data_source,
            error=EvalApiError(**(run.error or {"code": "", "message": ""})),
            result_counts=ResultCounts(**run.result_counts),
            per_testing_criteria_results=[CriterionResult(**c) for c in run.per_testing_criteria_results],
            per_model_usage=[ModelUsage(**usage) for usage in run.per_model_usage],
            report_url=report_url,
            metadata=run.run_metadata,
            fine_tuning_job_id=run.fine_tuning_job_id,
        )


class RunDeleted(BaseModel):
    object: Literal["eval.run.deleted"] = "eval.run.deleted"
    deleted: bool = True
    run_id: str


class OutputItemObject(BaseModel):
    id: str
    """`outputitem_...`."""
    object: Literal["eval.run.output_item"] = "eval.run.output_item"
    eval_id: str
    run_id: str
    created_at: int
    status: str
    """pass, fail, or errored (the item did not match the schema, or a sample or a grader failed)."""
    datasource_item_id: int
    """The item's index in the run's data source, from 0."""
    datasource_item: dict[str, Any]
    results: list[dict[str, Any]]
    """One per testing criterion: name, type, score, passed (and the grader's errors, if any)."""
    sample: dict[str, Any]

    @classmethod
    def of(cls, item: EvalOutputItem, eval_id: str, run_id: str) -> OutputItemObject:
        return cls(
            id=item.id,
            eval_id=eval_id,
            run_id=run_id,
            created_at=item.created_at,
            status=item.status,
            datasource_item_id=item.datasource_item_id,
            datasource_item=item.datasource_item,
            results=item.results,
            sample=item.sample,
        )


def eval_object(row: Eval, data_source_config: dict[str, Any]) -> EvalObject:
    return EvalObject(
        id=row.id,
        created_at=row.created_at,
        name=row.name,
        data_source_config=data_source_config,
        testing_criteria=row.testing_criteria,
        metadata=row.eval_metadata,
    )
