"""Whether a run recomputes activations in the backward pass (activation / gradient checkpointing).

Checkpointing trades about a third more compute for activation memory that no longer grows with the
number of layers. It pays only when memory is short, so `gradient_checkpointing: "auto"` (the
default) decides here, in one place: off on CPU (host memory is rarely what stops a CPU run, and
the recompute is a third of its time), and on a GPU on only when its free memory is short for the
model. True and false are the user's explicit choice and are kept.

On a GPU the figure compared with its free memory is the memory estimate's (catalog/estimate.py,
the same formulas `POST /v1/fine_tuning/estimates` answers with) for the run without
checkpointing: `estimated_bytes`. For a base without safetensors headers to read, HEADROOM_FACTOR x
the weights' size on disk (`weights_bytes`) stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from catalog.estimate import estimate_memory
from catalog.recipes import Recipe
from catalog.safetensors_headers import model_shape
from catalog.sizes import format_bytes

# Weights, gradients, optimizer state and activations of a fine-tuning step fit in about this many
# times the size of the weights for adapter recipes with moderate sequence lengths; below that much
# free memory, recompute activations rather than risk running out.
HEADROOM_FACTOR = 4.0


@dataclass(frozen=True)
class CheckpointingChoice:
    enabled: bool
    reason: str
    """Why, in the user's words; the run reports it as an event when "auto" decided."""


def resolve_gradient_checkpointing(
    requested: Literal["auto"] | bool,
    *,
    use_cuda: bool,
    needed_bytes: int | None = None,
    free_bytes: int | None = None,
) -> CheckpointingChoice:
    """The run's checkpointing: the user's explicit true/false, or "auto"'s choice.

    `needed_bytes`: what the run is expected to need on the GPU without checkpointing (today
    HEADROOM_FACTOR x the weights, see `weights_bytes`); `free_bytes`: the GPU's free memory.
    Unknown figures on a GPU choose checkpointing: the safe side of an out-of-memory failure.
    """
    if requested is not True and requested is not False and requested != "auto":
        raise ValueError(f"gradient_checkpointing must be auto, true or false, not {requested!r}")
    if isinstance(requested, bool):
        return CheckpointingChoice(requested, "as the recipe asks")
    if not use_cuda:
        return CheckpointingChoice(False, "off on CPU: memory is not what limits a CPU run")
    if needed_bytes is None or free_bytes is None:
        return CheckpointingChoice(True, "on: the GPU's free memory or the model's size is unknown")
    if free_bytes < needed_bytes:
        return CheckpointingChoice(
            True,
            f"on: the GPU has {format_bytes(free_bytes)} free, short of the {format_bytes(needed_bytes)} "
            "the run needs without it",
        )
    return CheckpointingChoice(
        False,
        f"off: the GPU has {format_bytes(free_bytes)} free, enough for the {format_bytes(needed_bytes)} "
        "the run needs",
    )


def weights_bytes(model_dir: str | Path) -> int:
    """The size of a model directory's weight files: what the weights take in memory, about."""
    directory = Path(model_dir)
    return sum(
        path.stat().st_size for pattern in ("*.safetensors", "*.bin") for path in directory.glob(pattern)
    )


def estimated_bytes(
    model_dir: str | Path, recipe: Recipe, *, task: str, precision: str, batch_size: int
) -> int | None:
    """What the estimate says one process of the run needs without checkpointing; None when the
    base has no safetensors files (only their headers are read, never the weights)."""
    shape = model_shape(Path(model_dir), task)
    if shape is None:
        return None
    memory = estimate_memory(
        recipe, shape, precision=precision, batch_size=batch_size, gradient_checkpointing=False
    )
    return memory.total_bytes_per_gpu


def gpu_free_bytes() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)
