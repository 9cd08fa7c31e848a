"""LoRA's dropout on the CPU, drawn from a few random numbers instead of one per element.

Each LoRA layer drops its own input before the adapter (`lora_dropout`, 0.05 by default): PyTorch
draws one random number per element of that input, which on a CPU costs about what the layer's
whole matrix product does (5 ms for 1,500 tokens x 576 features, as much as the 576 x 576 product;
forward and backward of the demo model's stack took 6.9 s with dropout 0.05 and 5.1 s without).
At p = 0.05 only one element in twenty is dropped, and the dropped positions of an i.i.d.
Bernoulli(p) mask are a run of geometric gaps: drawing the gaps takes p x n random numbers, not n.
The mask has the same distribution as `torch.nn.Dropout`'s, kept elements scaled by 1 / (1 - p) as
there; only which draw a seed gives differs. It follows torch's seeded default generator, so a run
repeats under its seed.

A GPU draws its masks fast, and large p gains little, so `SparseDropout` falls back to
`torch.nn.functional.dropout` off the CPU and above `MAX_SPARSE_P`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

MAX_SPARSE_P = 0.25
"""Above this the gaps are too many to be worth drawing apart (a quarter of the elements)."""


def dropped_positions(n: int, p: float, batch: int | None = None) -> torch.Tensor:
    """The dropped flat positions (ascending, int64) of an i.i.d. Bernoulli(p) mask over n elements.

    Each gap is floor(log(V) / log(1 - p)) + 1 for V uniform on (0, 1]: P(gap > k) = (1 - p)^k, the
    geometric law on 1, 2, ... with success probability p. float64 keeps V's tail and the running sum
    exact far past any tensor's length. (`exponential_` would give the same law at 4x the cost.)"""
    log_keep = math.log1p(-p)
    expected = n * p
    # Gaps drawn at a time: six standard deviations over the mean, so almost always one batch.
    batch = batch or int(expected + 6 * math.sqrt(expected) + 16)
    found, last = [], -1.0
    while True:
        uniform = torch.rand(batch, dtype=torch.float64)  # U in [0, 1), so V = 1 - U is in (0, 1]
        gaps = uniform.neg_().log1p_().div_(log_keep).floor_().add_(1)
        positions = gaps.cumsum_(0).add_(last)
        if positions[-1] >= n:
            found.append(positions[positions < n])
            break
        found.append(positions)
        last = float(positions[-1])
    return torch.cat(found).long()


def _masked(x: torch.Tensor, dropped: torch.Tensor, scale: float) -> torch.Tensor:
    """x scaled, with zeros at the dropped flat positions: the forward's output and its gradient alike."""
    out = x.contiguous() * scale
    out.view(-1).index_fill_(0, dropped, 0)
    return out


class _SparseDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        ctx.scale = 1.0 / (1.0 - p)
        dropped = dropped_positions(x.numel(), p)
        ctx.save_for_backward(dropped)
        return _masked(x, dropped, ctx.scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (dropped,) = ctx.saved_tensors
        return _masked(grad, dropped, ctx.scale), None


class SparseDropout(torch.nn.Module):
    """`torch.nn.Dropout(p)` with the mask drawn as gaps on the CPU (see the module's docstring)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or self.p > MAX_SPARSE_P:
            return torch.nn.functional.dropout(x, self.p, training=True)
        return _SparseDropoutFunction.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def install(model: Any) -> int:
    """Replace the `torch.nn.Dropout` of every LoRA layer's `lora_dropout` with `SparseDropout`; the
    number replaced (0 for a model without LoRA dropout)."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is torch.nn.Dropout and 0 < dropout.p <= MAX_SPARSE_P:
                dropouts[name] = SparseDropout(dropout.p)
                replaced += 1
    return replaced
