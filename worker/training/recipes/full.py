"""Full fine-tuning: every weight trains. The most capable and the most memory hungry (weights,
gradients and two Adam moments for every parameter); the artifact is a whole model directory."""

from __future__ import annotations

from typing import Any

from worker.training.base_model import BaseModel, full_precision_dtype
from worker.training.spec import TrainingSpec


def build(spec: TrainingSpec, base: BaseModel) -> Any:
    model = base.load(dtype=full_precision_dtype())
    for parameter in model.parameters():
        parameter.requires_grad = True
    return model
