"""The estimate's request (a job create's body; the training file optional) and its answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.estimates.service import Estimate
from api.fine_tuning.schemas import JobCreate
from catalog.estimate import Memory


class EstimateCreate(JobCreate):
    training_file: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None  # type: ignore[assignment]


class MemoryObject(BaseModel):
    """Bytes per GPU."""

    parameters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int = Field(description="Stored activations, logits included.")
    logits_bytes: int = Field(description="Of the activations: the logits, their fp32 copy and gradient.")
    total_bytes_per_gpu: int

    @classmethod
    def of(cls, memory: Memory) -> MemoryObject:
        return cls(
            parameters_bytes=memory.parameters_bytes,
            gradients_bytes=memory.gradients_bytes,
            optimizer_bytes=memory.optimizer_bytes,
            activations_bytes=memory.activations_bytes + memory.logits_bytes,
            logits_bytes=memory.logits_bytes,
            total_bytes_per_gpu=memory.total_bytes_per_gpu,
        )


class PrecisionTotal(BaseModel):
    precision: str
    total_bytes_per_gpu: int


class PoolEstimate(BaseModel):
    pool: str
    gpu_count: int = Field(description="GPUs of the pool's largest machine.")
    gpu_memory_bytes: int = Field(description="Memory of each of those GPUs.")
    machines: int
    fits: bool
    fits_without_gradient_checkpointing: bool
    tokens_per_second: float
    tokens_per_second_source: Literal["measured", "default"]
    estimated_duration_seconds: int | None = Field(description="Null without a training_file.")


class EstimateObject(BaseModel):
    object: Literal["fine_tuning.estimate"] = "fine_tuning.estimate"
    model: str
    method: str
    recipe: dict[str, Any]
    precision: str = Field(description="The precision the memory figures are for ('auto' is bf16 on a GPU).")
    batch_size: int
    n_epochs: int
    num_gpus: int
    num_nodes: int
    total_parameters: int
    trainable_parameters: int
    tokens: int | None = Field(description="Per epoch, estimated from the first lines of training_file.")
    n_examples: int | None
    tokens_counted_by: str | None = Field(description="tokenizer, or bytes (4 bytes a token).")
    memory: MemoryObject
    by_precision: list[PrecisionTotal]
    pools: list[PoolEstimate]

    @classmethod
    def of(cls, estimate: Estimate) -> EstimateObject:
        tokens = estimate.tokens
        return cls(
            model=estimate.model,
            method=estimate.method,
            recipe=estimate.recipe.model_dump(),
            precision=estimate.precision,
            batch_size=estimate.batch_size,
            n_epochs=estimate.n_epochs,
            num_gpus=estimate.recipe.num_gpus,
            num_nodes=estimate.recipe.num_nodes,
            total_parameters=estimate.parameters.total,
            trainable_parameters=estimate.parameters.trainable,
            tokens=tokens.tokens if tokens else None,
            n_examples=tokens.n_examples if tokens else None,
            tokens_counted_by=tokens.counted_by if tokens else None,
            memory=MemoryObject.of(estimate.memory),
            by_precision=[
                PrecisionTotal(precision=name, total_bytes_per_gpu=memory.total_bytes_per_gpu)
                for name, memory in estimate.by_precision.items()
            ],
            pools=[
                PoolEstimate(
                    pool=fit.pool.name,
                    gpu_count=fit.pool.largest.gpu_count,
                    gpu_memory_bytes=fit.pool.largest.gpu_memory_bytes,
                    machines=len(fit.pool.machines),
                    fits=fit.fits,
                    fits_without_gradient_checkpointing=fit.fits_without_checkpointing,
                    tokens_per_second=round(fit.tokens_per_second, 1),
                    tokens_per_second_source="measured" if fit.measured else "default",
                    estimated_duration_seconds=fit.estimated_seconds,
                )
                for fit in estimate.pools
            ],
        )
