"""Padding-free batches: a batch's examples laid end to end in one row, no compute on padding.

A padded batch of B examples costs B x (the longest) tokens through every layer; a flattened one
costs the sum of their lengths. The examples of a step stay the same (unlike `packing`), so steps,
the learning-rate schedule and `batch_size` keep their meaning, and so does the loss: every token is
predicted from the tokens of its own example only, with position ids restarting at each example.

Whether that is faster depends on the attention implementation, which must keep the examples apart:
- flash-attention (`flash_attention_*`) has varlen kernels that read the example boundaries:
  flattened rows as they come.
- sdpa (the default where flash-attention is not installed, CPU included) would otherwise get a
  dense block-diagonal mask over the whole row, quadratic in the *sum* of the lengths, and on CPU
  slower than padding. So the run switches to `VARLEN_SDPA`, registered here: sdpa called once per
  example on its own slice of the row, causal, with no mask at all: attention costs the sum of the
  squares of the lengths, less than padding's B x longest^2.
- anything else (eager, an architecture that does not dispatch through transformers'
  AttentionInterface) would build the dense mask: padded batches, and an event says why.
Recipes that change the sequence (prompt and prefix tuning add virtual tokens to every row) keep
padded batches.

`VARLEN_SDPA` runs only while training: the trainer's collator passes it the example boundaries
(`cu_seq_lens_q`); without them (a padded batch) it is causal sdpa, which is exact for the real tokens
of right-padded rows. The switch is not saved: config.json never records the attention implementation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface, PreTrainedModel

VARLEN_SDPA = "tunery_varlen_sdpa"
NATIVE_VARLEN = ("flash_attention_2", "flash_attention_3", "flash_attention_4")
# Prompt and prefix tuning add virtual tokens (or keys and values) to every row: a flattened row of
# several examples would get them once, at its start.
ROW_CHANGING_RECIPES = ("prompt_tuning", "prefix_tuning")


@dataclass(frozen=True)
class BatchLayout:
    padding_free: bool
    attention: str | None
    """The attention implementation to train with, where it changes (else None)."""
    reason: str


def varlen_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """sdpa over each example of a flattened row: (batch, heads, seq, dim) in, (batch, seq, heads, dim)
    out, as transformers' attention functions return it."""
    gqa = query.shape[1] != key.shape[1]
    flattened = cu_seq_lens_q is not None and query.shape[0] == 1
    bounds = cu_seq_lens_q.tolist() if flattened else [0, query.shape[2]]  # type: ignore[union-attr]
    pieces = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for start, end in itertools.pairwise(bounds)
        if end > start
    ]
    output = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_forward)


def choose_layout(model: Any, recipe_type: str) -> BatchLayout:
    """How a run's supervised batches are laid out, from its model's attention implementation."""
    if recipe_type in ROW_CHANGING_RECIPES:
        return BatchLayout(False, None, f"padded batches: {recipe_type} adds virtual tokens to every row")
    base = _pretrained(model)
    implementation = base.config._attn_implementation
    if implementation in NATIVE_VARLEN:
        return BatchLayout(True, None, f"padding-free batches ({implementation} varlen kernels)")
    if implementation == "sdpa" and base._can_set_attn_implementation():
        return BatchLayout(
            True,
            VARLEN_SDPA,
            "padding-free batches (sdpa per example: a dense mask over the flattened batch would be "
            "slower than padding)",
        )
    return BatchLayout(
        False,
        None,
        f"padded batches: with {implementation} attention a flattened batch needs a dense mask over the "
        "whole row, slower than padding",
    )


def apply(model: Any, layout: BatchLayout) -> None:
    """Switch the model to the layout's attention implementation, where it names one."""
    if layout.attention is not None:
        _pretrained(model).set_attn_implementation(layout.attention)


def _pretrained(model: Any) -> PreTrainedModel:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    assert isinstance(base, PreTrainedModel)
    return base
