"""Freeze: the top `trainable_layers` blocks and everything after them (final norm, head) train; the
embeddings and lower blocks stay bit-identical. With trainable_layers 0 only the head trains (linear
probing, for classification).

A tied LM head shares its tensor with the input embeddings, which stay frozen: training it would
change the frozen bottom of the model too.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from worker.training.base_model import BaseModel, full_precision_dtype
from worker.training.spec import RecipeError, TrainingSpec


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    model = base.load(dtype=full_precision_dtype())
    n_trainable = spec.recipe.trainable_layers
    blocks = _blocks(model)
    if n_trainable > len(blocks):
        raise RecipeError(
            f"trainable_layers is {n_trainable}, but the base model has only {len(blocks)} layers"
        )
    # Parameters are registered in forward order (embeddings, blocks, norm, head), so "the top blocks
    # and everything after them" is every parameter from the first one of the lowest trainable block.
    first_trainable = next(blocks[len(blocks) - n_trainable].parameters()) if n_trainable else None
    last_block_parameter = list(blocks[-1].parameters())[-1]
    training = False
    after_blocks = False
    for parameter in model.parameters():
        if parameter is first_trainable:
            training = True
        parameter.requires_grad = training or after_blocks
        if parameter is last_block_parameter:
            after_blocks = True
    return model


def _blocks(model: Any) -> nn.ModuleList:
    # The transformer's blocks are its largest ModuleList (decoder layers, encoder layers).
    lists = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    if not lists:
        raise RecipeError("freeze needs a model made of a list of layers; this base model has none")
    return max(lists, key=lambda module: sum(p.numel() for p in module.parameters()))
