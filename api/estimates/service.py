"""The estimate of a job before it runs, and the admission that places it on a GPU pool that fits.

The formulas are catalog/estimate.py's (torch-free); this module feeds them what the API knows: the
base model's config and safetensors headers, the recipe, the batch size, the training file's tokens,
and the live GPU pools of the worker registry with the speed each measured on earlier jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api import clock
from api.config import Settings
from api.errors import InvalidRequest
from api.estimates import repository
from api.estimates.tokens import TokenCount, count_tokens
from api.fine_tuning.hyperparameters import auto_batch_size, auto_epochs
from api.models.store import BaseModelEntry
from api.workers.pools import Pool, gpu_pools
from catalog import safetensors_headers
from catalog.estimate import (
    GPU_PRECISIONS,
    Memory,
    ModelShape,
    Parameters,
    count_parameters,
    estimate_memory,
)
from catalog.methods import METHODS
from catalog.recipes import Recipe
from catalog.sizes import format_bytes

# The precision "auto" picks on a GPU that has bf16 (every card a pool is likely to hold).
GPU_AUTO_PRECISION = "bf16"


@dataclass(frozen=True)
class PoolFit:
    pool: Pool
    fits: bool
    fits_without_checkpointing: bool
    tokens_per_second: float
    measured: bool
    """Whether tokens_per_second comes from earlier jobs of this base and recipe type on the pool."""
    estimated_seconds: int | None


@dataclass(frozen=True)
class Estimate:
    model: str
    method: str
    recipe: Recipe
    precision: str
    batch_size: int
    n_epochs: int
    parameters: Parameters
    memory: Memory
    by_precision: dict[str, Memory]
    tokens: TokenCount | None
    pools: list[PoolFit]


def model_shape(base: BaseModelEntry, method_type: str) -> ModelShape | None:
    """The base's shape from config.json and its safetensors headers; None without safetensors."""
    return safetensors_headers.model_shape(base.path, METHODS[method_type].task)


def run_precision(recipe: Recipe) -> str:
    return GPU_AUTO_PRECISION if recipe.precision == "auto" else recipe.precision


def batch_size_of(hyperparameters: dict[str, Any], n_examples: int | None) -> int:
    given = hyperparameters.get("batch_size")
    if isinstance(given, int):
        return given
    # "auto" follows the dataset's size; before the file is read, one example a step.
    return auto_batch_size(n_examples) if n_examples else 1


def estimate(
    session: Session,
    settings: Settings,
    base: BaseModelEntry,
    method_type: str,
    hyperparameters: dict[str, Any],
    recipe: Recipe,
    training_file: Path | None,
) -> Estimate:
    shape = model_shape(base, method_type)
    if shape is None:
        raise InvalidRequest(
            f"{base.id} has no safetensors weights to read its tensor shapes from; estimates need them",
            param="model",
            code="model_not_estimable",
        )
    tokens = count_tokens(training_file, base.path, recipe.max_seq_length) if training_file else None
    n_examples = tokens.n_examples if tokens else None
    batch_size = batch_size_of(hyperparameters, n_examples)
    given_epochs = hyperparameters.get("n_epochs")
    n_epochs = given_epochs if isinstance(given_epochs, int) else auto_epochs(n_examples or 1)
    precision = run_precision(recipe)
    memory = estimate_memory(recipe, shape, precision=precision, batch_size=batch_size)
    without_checkpointing = estimate_memory(
        recipe, shape, precision=precision, batch_size=batch_size, gradient_checkpointing=False
    )
    by_precision = {
        name: estimate_memory(recipe, shape, precision=name, batch_size=batch_size) for name in GPU_PRECISIONS
    }
    pools = []
    for pool in gpu_pools(session, now=clock.now(), lost_after=settings.lease_seconds):
        rate, measured = _tokens_per_second(session, settings, pool, base.id, recipe)
        seconds = round(tokens.tokens * n_epochs / rate) if tokens else None
        total = memory.total_bytes_per_gpu
        pools.append(
            PoolFit(
                pool,
                fits=pool.fits(recipe.num_gpus, recipe.num_nodes, total),
                fits_without_checkpointing=pool.fits(
                    recipe.num_gpus, recipe.num_nodes, without_checkpointing.total_bytes_per_gpu
                ),
                tokens_per_second=rate,
                measured=measured,
                estimated_seconds=seconds,
            )
        )
    return Estimate(
        model=base.id,
        method=method_type,
        recipe=recipe,
        precision=precision,
        batch_size=batch_size,
        n_epochs=n_epochs,
        parameters=count_parameters(recipe, shape),
        memory=memory,
        by_precision=by_precision,
        tokens=tokens,
        pools=pools,
    )


def _tokens_per_second(
    session: Session, settings: Settings, pool: Pool, model: str, recipe: Recipe
) -> tuple[float, bool]:
    """The pool's measured rate on earlier jobs of this base and recipe type, else the stated default
    per GPU times the job's processes."""
    runs = [
        job
        for job in repository.recent_runs(session, model, pool.name)
        if job.recipe.get("type") == recipe.type
    ]
    tokens = sum(job.trained_tokens or 0 for job in runs)
    seconds = sum((job.finished_at or 0) - (job.started_at or 0) for job in runs)
    if tokens > 0 and seconds > 0:
        return tokens / seconds, True
    return settings.estimate_tokens_per_second * recipe.processes, False


def place(
    session: Session,
    settings: Settings,
    base: BaseModelEntry,
    method_type: str,
    hyperparameters: dict[str, Any],
    recipe: Recipe,
) -> str | None:
    """The GPU pool a new job trains on: of the pools whose machines fit it, the one with the least
    memory per GPU (the big cards stay free for the jobs that need them). None when no worker offers
    GPUs (the embedded default): the job trains on the default pool. A job that fits no pool is a 400
    that says what it needs."""
    pools = gpu_pools(session, now=clock.now(), lost_after=settings.lease_seconds)
    if not pools:
        return None
    shape = model_shape(base, method_type)
    if shape is None:
        # Nothing to measure it by: the pool with the most memory is the best guess.
        return max(pools, key=lambda pool: pool.largest.gpu_memory_bytes).name
    memory = estimate_memory(
        recipe, shape, precision=run_precision(recipe), batch_size=batch_size_of(hyperparameters, None)
    )
    needed = memory.total_bytes_per_gpu
    fitting = [pool for pool in pools if pool.fits(recipe.num_gpus, recipe.num_nodes, needed)]
    if fitting:
        return min(fitting, key=lambda pool: (pool.largest.gpu_memory_bytes, pool.name)).name
    largest = max(pools, key=lambda pool: pool.largest.gpu_count * pool.largest.gpu_memory_bytes)
    gpus = recipe.num_gpus
    nodes = f" on each of {recipe.num_nodes} machines" if recipe.num_nodes > 1 else ""
    raise InvalidRequest(
        f"This job needs {gpus} GPU{'s' if gpus > 1 else ''} with {format_bytes(needed)} each{nodes}; "
        f"the largest pool ({largest.name}) has {largest.describe()}. Try a smaller max_seq_length or "
        "batch_size, gradient_checkpointing, a quantized recipe (qlora), or distributed 'fsdp' on more "
        "GPUs.",
        param="recipe",
        code="job_too_large",
    )
