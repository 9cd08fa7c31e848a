"""Faster kernels for the same training: Liger's fused kernels on a GPU, and torch.compile on request.

Liger (the liger-kernel package: fused linear cross-entropy that never materialises the logits,
RMSNorm, RoPE, SwiGLU) is Triton code, so it runs only on CUDA, and only for the architectures it
patches. It is used when all three hold: CUDA, the package importable, the model's architecture in
its table. Anywhere else training runs on the stock modules, with the same results, and an event
says which it is when a GPU is present.

On the CPU, LoRA's dropout draws its masks sparsely (worker/training/dropout.py): the same
distribution at a fraction of the random numbers, which there cost as much as the adapter's layer.

`compile: true` hands the model to torch.compile (the Trainer's `torch_compile`). The first steps
pay for tracing and code generation; `CompileWarmupCallback` reports that cost as an event, the
first step's time against the steps after it.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from transformers import TrainerCallback

from worker.training import dropout
from worker.training.progress import ProgressWriter
from worker.training.spec import TrainingSpec


def liger_architectures() -> frozenset[str]:
    """The model types Liger patches; empty without the package."""
    if importlib.util.find_spec("liger_kernel") is None:
        return frozenset()
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except Exception:  # an install that can't import (no Triton, say) is an absent one
        return frozenset()
    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


def use_liger(model_type: str, use_cuda: bool) -> tuple[bool, str]:
    """Whether Liger's kernels apply to this run, and why (or why not)."""
    if not use_cuda:
        return False, "Liger kernels need CUDA"
    architectures = liger_architectures()
    if not architectures:
        return False, "fused Liger kernels are off: the liger-kernel package is not installed"
    if model_type not in architectures:
        return False, f"fused Liger kernels are off: they do not support the {model_type} architecture"
    return True, f"fused Liger kernels (cross-entropy, RMSNorm, RoPE, SwiGLU) on for {model_type}"


def kernel_arguments(
    spec: TrainingSpec, model: Any, use_cuda: bool, progress: ProgressWriter
) -> dict[str, Any]:
    """The TrainingArguments that switch the faster kernels on, with an event for each choice; on the
    CPU, the sparse LoRA dropout swapped into `model` in place."""
    arguments: dict[str, Any] = {}
    if not use_cuda:
        replaced = dropout.install(model)
        if replaced:
            progress.message(f"LoRA dropout: masks drawn sparsely on the CPU ({replaced} layers)")
    base_config = getattr(model, "config", None)
    model_type = getattr(base_config, "model_type", "") or ""
    liger, reason = use_liger(model_type, use_cuda)
    if use_cuda:
        progress.message(reason)
    if liger:
        arguments["use_liger_kernel"] = True
    if spec.recipe.compile:
        arguments["torch_compile"] = True
    return arguments


class CompileWarmupCallback(TrainerCallback):
    """Reports what torch.compile's warm-up cost: the first step against the median of the next ones."""

    REPORT_AFTER = 3  # steps after the first whose times make the comparison

    def __init__(self, writer: ProgressWriter):
        self.writer = writer
        self._started: float | None = None
        self._times: list[float] = []
        self._reported = False

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._started is None or self._reported:
            return
        self._times.append(time.perf_counter() - self._started)
        if len(self._times) > self.REPORT_AFTER:
            self._report()

    def on_train_end(self, args, state, control, **kwargs):
        if self._times and not self._reported:
            self._report()

    def _report(self) -> None:
        self._reported = True
        first, later = self._times[0], sorted(self._times[1:])
        if not later:
            self.writer.message(f"torch.compile: the first step, compilation included, took {first:.1f}s")
            return
        typical = later[len(later) // 2]
        self.writer.message(
            f"torch.compile warm-up: the first step took {first:.1f}s, later steps {typical:.2f}s "
            f"(about {max(first - typical, 0.0):.1f}s spent compiling)"
        )
