"""Fine-tuning objects as the openai SDK types them (openai.types.fine_tuning), plus our `recipe`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, create_model

from api.evals.schemas import EvalLink
from api.fine_tuning.recipe_schema import RecipeIn
from api.request_models import Strict
from api.tables import FineTuningJob, FineTuningJobEvent
from catalog.methods import (
    METHOD_NAMES,
    METHODS,
    BatchSize,
    HyperparametersIn,
    LearningRateMultiplier,
    NEpochs,
)

# OpenAI's methods that Tunery does not train yet: the schema takes them, so the answer can say so.
NOT_YET_METHODS: tuple[str, ...] = ()


class _Section(Strict):
    """`method.{type}`: the method's own settings; its hyperparameters are the registry's."""


class _MethodBase(Strict):
    type: str

    def given_hyperparameters(self) -> HyperparametersIn | None:
        """The hyperparameters under the method's own key; only that key may carry them."""
        for other in (*METHOD_NAMES, *NOT_YET_METHODS):
            if other != self.type and getattr(self, other) is not None:
                raise ValueError(f"method.{other} given, but method.type is {self.type!r}")
        section = getattr(self, self.type)
        return getattr(section, "hyperparameters", None)


def _section_fields(row: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"hyperparameters": (row.hyperparameters | None, None)}
    if row.grader:
        # Read by api/graders/service.py, which names the bad field of a bad grader.
        fields["grader"] = (dict[str, Any], ...)
    return fields


def _method_model() -> type[_MethodBase]:
    sections: dict[str, Any] = {
        row.name: (
            create_model(f"{row.name.title()}In", __base__=_Section, **_section_fields(row)) | None,
            None,
        )
        for row in METHODS.values()
    }
    sections.update({name: (dict[str, Any] | None, None) for name in NOT_YET_METHODS})
    return create_model(
        "MethodIn",
        __base__=_MethodBase,
        type=(Literal[(*METHOD_NAMES, *NOT_YET_METHODS)], ...),  # type: ignore[arg-type]
        **sections,
    )


if TYPE_CHECKING:
    MethodIn = _MethodBase
else:
    MethodIn = _method_model()


class WandbIn(BaseModel):
    project: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    entity: str | None = None
    name: str | None = None
    tags: list[Annotated[str, StringConstraints(max_length=64)]] | None = None


class IntegrationIn(Strict):
    """Accepted and stored as OpenAI does; Tunery reports nowhere else yet (see the README)."""

    type: Literal["wandb"]
    wandb: WandbIn


Suffix = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class JobCreate(Strict):
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    training_file: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    validation_file: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    hyperparameters: HyperparametersIn | None = None
    method: MethodIn | None = None
    suffix: Suffix | None = None
    seed: Annotated[int, Field(ge=0, le=2147483647)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    integrations: Annotated[list[IntegrationIn], Field(max_length=16)] | None = None
    recipe: RecipeIn | None = None
    eval: EvalLink | None = None
    """Tunery's extension: an eval to run on the fine-tuned model and on its base once the job succeeds."""


class Hyperparameters(BaseModel):
    batch_size: BatchSize
    learning_rate_multiplier: LearningRateMultiplier
    n_epochs: NEpochs


def method_object(job: FineTuningJob) -> dict[str, Any]:
    """The resolved method, as OpenAI returns it: {"type": t, t: {"hyperparameters": {...}}}."""
    method_type = job.method["type"]
    section: dict[str, Any] = {"hyperparameters": dict(job.hyperparameters)}
    if METHODS[method_type].labels and job.method.get("labels"):
        section["labels"] = job.method["labels"]
    if METHODS[method_type].grader and job.method.get("grader"):
        section["grader"] = job.method["grader"]
    return {"type": method_type, method_type: section}


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJobObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: Hyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: dict[str, Any]
    user_provided_suffix: str | None = None
    recipe: dict[str, Any] = Field(description="Tunery's extension: the recipe with every default filled in.")
    eval: dict[str, Any] | None = Field(
        default=None,
        description="Tunery's extension: the eval that runs on the fine-tuned model and its base.",
    )

    @classmethod
    def of(cls, job: FineTuningJob) -> FineTuningJobObject:
        hyperparameters = Hyperparameters(
            **{name: job.hyperparameters[name] for name in Hyperparameters.model_fields}
        )
        return cls(
            id=job.id,
            created_at=job.created_at,
            error=JobError(**job.error) if job.error else None,
            fine_tuned_model=job.fine_tuned_model,
            finished_at=job.finished_at,
            hyperparameters=hyperparameters,
            model=job.start_from["model"] if job.start_from else job.model,
            organization_id=job.project.id,
            result_files=job.result_files,
            seed=job.seed,
            status=job.status,  # type: ignore[arg-type]
            trained_tokens=job.trained_tokens,
            training_file=job.training_file,
            validation_file=job.validation_file,
            estimated_finish=job.estimated_finish,
            integrations=job.integrations,
            metadata=job.job_metadata,
            method=method_object(job),
            user_provided_suffix=job.suffix,
            recipe=job.recipe,
            eval=job.eval_on_success,
        )


class FineTuningJobEventObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any] | None = None
    type: Literal["message", "metrics"]

    @classmethod
    def of(cls, event: FineTuningJobEvent) -> FineTuningJobEventObject:
        return cls(
            id=event.id,
            created_at=event.created_at,
            level=event.level,  # type: ignore[arg-type]
            message=event.message,
            data=event.data,
            type=event.type,  # type: ignore[arg-type]
        )
