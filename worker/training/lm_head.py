"""The LM head of supervised and DPO training: only the positions that have a label are scored.

TRL patches the model with a fused LM head (`add_fused_lm_head`) that returns each next-token label's
log-probability without materialising the (tokens, vocabulary) logits. Where Triton runs (CUDA, XPU)
it scores only the positions whose label is not -100, in tiles. Elsewhere (the CPU) it scores *every*
position, the prompt's too, through a tiled torch fallback that recomputes each tile in the backward:
a profile of bench/throughput.py on the CPU put 42% of a step's time in it, against 10% for the
plain script's whole logits and cross-entropy.

`install` replaces that head with one that always scores the labelled positions only (a chat's system
and user turns are never scored) and, where their logits are small enough (`MATERIALISE_BYTES`) and
there is no Triton, materialises them and takes the cross-entropy at once: one projection forward and
one backward, no recomputation. Otherwise it calls TRL's kernel on the labelled positions: on a GPU
that is what TRL itself does.

It returns TRL's `FusedCausalLMOutput` with the same fields, zero where the label is -100, so TRL's
loss and metrics are unchanged. The metric fields (`entropy`, `mean_logits`, `log_sum_sq_probs`,
`is_top1`) carry no gradient: supervised and DPO training only log them, which is why reinforcement
(whose entropy bonus is trained) keeps TRL's head. Heads that scale or soft-cap their logits, and
mixture-of-experts models (their load-balancing loss comes with the forward), keep TRL's head too.
"""

from __future__ import annotations

import types
from typing import Any, cast

import torch
from torch.distributed.tensor import DTensor
from trl.kernels import ChunkedLogProbFunction
from trl.kernels.chunked_logprob import _use_triton
from trl.trainer.utils import FusedCausalLMOutput

from worker.training.progress import ProgressWriter

MATERIALISE_BYTES = 512 * 2**20
"""The fp32 logits of the labelled positions materialise below this (about 2,700 tokens of a 49k
vocabulary); above it the tiled kernel bounds the memory."""
CHUNK_SIZE = 32768  # vocabulary columns per tile of the kernel, as TRL tiles them

SCALED_HEAD_SETTINGS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
MIXTURE_OF_EXPERTS_SETTINGS = ("num_experts", "num_local_experts", "router_aux_loss_coef")


def applies(model: Any) -> tuple[bool, str]:
    """Whether `install` applies to this causal LM, and why not where it doesn't."""
    config = model.config.get_text_config()
    scaled = [name for name in SCALED_HEAD_SETTINGS if getattr(config, name, None) is not None]
    if scaled:
        return False, f"the LM head scales its logits ({scaled[0]})"
    if any(getattr(config, name, None) is not None for name in MIXTURE_OF_EXPERTS_SETTINGS):
        return False, "a mixture-of-experts model adds its router's loss in the forward"
    return True, "the LM head scores only the positions that have a label"


def install(model: Any, outputs: tuple[str, ...]) -> bool:
    """Replace TRL's fused head on `model` (the PreTrainedModel TRL patched, under any PEFT wrapper);
    `outputs` are the fields the trainer asked TRL for. False where it does not apply."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not applies(base)[0]:
        return False
    original = type(base).forward

    def forward(
        self: Any,
        *args: Any,
        fused_lm_head: bool = False,
        labels: torch.Tensor | None = None,
        shift_labels: torch.Tensor | None = None,
        num_items_in_batch: Any = None,
        **kwargs: Any,
    ) -> Any:
        if not fused_lm_head:  # generation and the plain forward are the model's own
            passed = {
                "labels": labels,
                "shift_labels": shift_labels,
                "num_items_in_batch": num_items_in_batch,
            }
            kwargs.update({key: value for key, value in passed.items() if value is not None})
            return original(self, *args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]  # type: ignore[index]
        else:
            labels = shift_labels
        head = self.get_output_embeddings()
        labels = labels.to(head.weight.device)  # type: ignore[union-attr]
        mask = labels != -100
        per_token = score(head, hidden.to(head.weight.device)[mask], labels[mask], outputs)
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
            None if field is None else field.new_zeros(mask.shape).masked_scatter(mask, field)
            for field in per_token
        )
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,  # type: ignore[union-attr]
            log_probs=log_probs,
            entropy=entropy,
            log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
        )

    forward.__doc__ = original.__doc__
    base.forward = types.MethodType(forward, base)
    return True


def install_or_say(model: Any, outputs: tuple[str, ...], progress: ProgressWriter) -> None:
    """`install`, with an event saying which head the run trains with."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    applied, reason = applies(base)
    if applied:
        install(base, outputs)
        progress.message("LM head: only the positions that have a label are scored")
    else:
        progress.message(f"LM head: TRL's fused head, since {reason}")


def score(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, outputs: tuple[str, ...]
) -> tuple[torch.Tensor | None, ...]:
    """(log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1) of the labelled positions' hidden
    states (tokens, hidden) against their next tokens, each field not in `outputs` None."""
    weight, bias = cast(torch.Tensor, head.weight), getattr(head, "bias", None)
    vocabulary = weight.shape[0]
    if (
        isinstance(weight, DTensor)
        or _use_triton(hidden.device)
        or (hidden.shape[0] * vocabulary * 4 > MATERIALISE_BYTES)
    ):
        if isinstance(weight, DTensor):  # FSDP2: the head gathered once for every tile
            weight = weight.full_tensor()
            bias = bias.full_tensor() if isinstance(bias, DTensor) else bias
        return ChunkedLogProbFunction.apply(
            hidden, weight, bias, targets, 1.0, CHUNK_SIZE, None, 1.0, outputs
        )
    logits = head(hidden).float()
    log_probs = -torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    with torch.no_grad():  # metrics only (see the module's docstring)
        z = logits.detach()
        log_z = torch.logsumexp(z, dim=-1) if {"entropy", "log_sum_sq_probs"} & set(outputs) else None
        entropy = (
            log_z - (torch.softmax(z, dim=-1) * z).sum(-1)  # type: ignore[operator]
            if "entropy" in outputs
            else None
        )
        log_sum_sq_probs = (
            torch.logsumexp(2 * (z - log_z.unsqueeze(-1)), dim=-1)  # type: ignore[union-attr]
            if "log_sum_sq_probs" in outputs
            else None
        )
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = z.argmax(-1) == targets if "is_top1" in outputs else None  # the first maximum, as TRL's
    return log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1
