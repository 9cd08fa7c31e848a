"""Where the run trains and in which number format, resolved once from the recipe and the machine.

precision "auto" means bf16 on a GPU that has it, fp16 on an older GPU, fp32 on CPU. A half
precision that the machine cannot train in (fp16 or bf16 asked for on CPU, bf16 on a GPU without it)
falls back to what "auto" would pick, with a warning: the spec may have been written for another
machine, and the same run in a wider format gives the same model at more memory, which is a better
outcome than a failed job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    name: str  # "bf16", "fp16" or "fp32": what the run really uses
    use_cuda: bool
    warning: str | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of frozen base weights (adapter recipes) and of compute."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def resolve_precision(requested: str) -> Precision:
    use_cuda = torch.cuda.is_available()
    bf16_ok = use_cuda and torch.cuda.is_bf16_supported()
    auto = "bf16" if bf16_ok else "fp16" if use_cuda else "fp32"
    if requested == "auto" or requested == auto:
        return Precision(auto, use_cuda)
    if requested == "fp32":
        return Precision("fp32", use_cuda)
    if requested == "fp16" and use_cuda:
        return Precision("fp16", use_cuda)
    where = "this GPU" if use_cuda else "CPU"
    return Precision(
        auto,
        use_cuda,
        warning=f"precision {requested} is not available on {where}; training in {auto} instead",
    )
