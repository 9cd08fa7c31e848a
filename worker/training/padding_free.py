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

DPO and classification need their batches padded *outside* the model: TRL's DPO sums each row's
log-probabilities, and a classifier reads each row's last token. `flatten_padded_batches` gives them
padding-free compute all the same: the decoder stack runs the batch's real tokens as one flattened row
and hands back its hidden states in their padded places (zeros at the padding), so the LM head or the
classification head, the loss and TRL see the padded batch they always did. Attention in these is
causal only (`VARLEN_SDPA` is), so an encoder keeps padded batches.
"""

from __future__ import annotations

import functools
import inspect
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
    """How a run's batches are laid out, from its model's attention implementation."""
    if recipe_type in ROW_CHANGING_RECIPES:
        return BatchLayout(False, None, f"padded batches: {recipe_type} adds virtual tokens to every row")
    base = _pretrained(model)
    if not _causal(base):
        return BatchLayout(False, None, "padded batches: the model's attention is not causal (an encoder)")
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


def flatten_padded_batches(model: Any, layout: BatchLayout) -> None:
    """Run the right-padded batches that reach `model`'s decoder stack as one flattened row of their
    real tokens, with the layout's attention (`apply`), and return the stack's hidden states in the
    padded shape (see the module's docstring). Anything else (left padding, no padding, a cache,
    embeddings, position ids of the caller's own) goes through the stack as it is."""
    assert layout.padding_free, layout.reason
    apply(model, layout)
    stack = _pretrained(model).base_model
    original = stack.forward
    # Callers pass input_ids by position (transformers' classification heads do): name them.
    positional = [
        name
        for name, parameter in inspect.signature(original).parameters.items()
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        if len(args) > len(positional):
            return original(*args, **kwargs)
        kwargs = dict(zip(positional, args, strict=False)) | kwargs
        keep = _padding_to_drop(kwargs)
        if keep is None:
            return original(**kwargs)
        lengths = keep.sum(dim=1)
        bounds = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
        longest = int(lengths.max())
        kwargs.pop("attention_mask")
        outputs = original(
            **kwargs
            | {
                "input_ids": kwargs["input_ids"][keep].unsqueeze(0),
                "position_ids": (keep.cumsum(dim=1) - 1)[keep].unsqueeze(0),
                "use_cache": False,
                "cu_seq_lens_q": bounds,
                "cu_seq_lens_k": bounds,
                "max_length_q": longest,
                "max_length_k": longest,
            }
        )
        flat = outputs.last_hidden_state[0]
        padded = flat.new_zeros(*keep.shape, flat.shape[-1])
        padded[keep] = flat
        outputs.last_hidden_state = padded
        return outputs

    stack.forward = forward


def _padding_to_drop(kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The real tokens (a bool mask) of a right-padded batch with some padding that can be flattened,
    else None."""
    input_ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
    if not (isinstance(input_ids, torch.Tensor) and isinstance(mask, torch.Tensor)):
        return None
    if mask.dim() != 2 or mask.shape != input_ids.shape or bool(mask.all()):
        return None
    if any(
        kwargs.get(name) is not None for name in ("position_ids", "inputs_embeds", "past_key_values", "cache")
    ):
        return None
    if kwargs.get("output_hidden_states") or kwargs.get("output_attentions"):
        return None
    keep = mask.bool()
    right_padded = bool((keep[:, 1:] <= keep[:, :-1]).all()) and bool(keep[:, 0].all())
    return keep if right_padded else None


def _causal(base: PreTrainedModel) -> bool:
    """Whether every attention layer of the model is causal (a decoder), as its modules declare."""
    declared = [
        module.is_causal for module in base.modules() if isinstance(getattr(module, "is_causal", None), bool)
    ]
    return bool(declared) and all(declared)


def _pretrained(model: Any) -> PreTrainedModel:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    assert isinstance(base, PreTrainedModel)
    return base
