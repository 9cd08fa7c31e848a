"""The memory estimate (catalog/estimate.py) against what the trainer really allocates, per recipe type.

The estimate reads only config.json and the safetensors headers; here each recipe family builds its
real model on the tiny Llama, one backward and one AdamW step run, and the bytes of the parameters,
of their gradients and of the optimizer's state are summed from the tensors themselves. CPU runs
train in fp32, so the estimate is asked for fp32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from catalog.estimate import ModelShape, count_parameters, estimate_memory
from catalog.safetensors_headers import model_shape
from tests.support.tiny_model import build_tiny_chat_model
from tests.training.trainer_runs import toy_spec
from worker.training.base_model import BaseModel
from worker.training.precision import resolve_precision
from worker.training.recipes import get_recipe
from worker.training.spec import Recipe

TOLERANCE = 0.10


@pytest.fixture(scope="module")
def biased_model_dir(tmp_path_factory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-biased"), with_biases=True)


def shape_of(model_dir: Path) -> ModelShape:
    shape = model_shape(model_dir)
    assert shape is not None
    return shape


def allocated(recipe: Recipe, model_dir: Path, tmp_path: Path) -> tuple[int, int, int, int, int]:
    """(parameter bytes, gradient bytes, optimizer bytes, trainable count, total count) of the real run."""
    spec = toy_spec(tmp_path, model_dir, n_train=4, n_epochs=1, recipe=recipe)
    model = get_recipe(recipe.type).build(
        spec, BaseModel(str(model_dir), "CAUSAL_LM", resolve_precision("auto"))
    )
    parameters = list(model.parameters())  # shared (tied) tensors come once
    parameter_bytes = 0
    total = 0
    for parameter in parameters:
        parameter_bytes += parameter.numel() * parameter.element_size()
        state = getattr(parameter, "quant_state", None)
        if state is not None:
            # 4-bit weights: two values a byte, plus their per-block scales beside the tensor.
            total += parameter.numel() * 2
            parameter_bytes += state.absmax.numel() * state.absmax.element_size()
            if state.state2 is not None:
                parameter_bytes += state.state2.absmax.numel() * state.state2.absmax.element_size()
        else:
            total += parameter.numel()
        scale = getattr(parameter, "SCB", None)
        if scale is not None:
            parameter_bytes += scale.numel() * scale.element_size()
    trained = [p for p in parameters if p.requires_grad]
    model.train()
    ids = torch.randint(0, 300, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    gradient_bytes = sum(p.grad.numel() * p.grad.element_size() for p in trained if p.grad is not None)
    optimizer = torch.optim.AdamW(trained, lr=1e-3)
    optimizer.step()
    optimizer_bytes = sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for key, value in state.items()
        if key != "step"
    )
    return parameter_bytes, gradient_bytes, optimizer_bytes, sum(p.numel() for p in trained), total


CASES = [
    Recipe(type="lora", lora_r=4),
    Recipe(type="dora"),
    Recipe(type="qlora"),
    Recipe(type="lora_int8"),
    Recipe(type="ia3"),
    Recipe(type="prompt_tuning", num_virtual_tokens=5),
    Recipe(type="prefix_tuning", num_virtual_tokens=5),
    Recipe(type="bitfit"),
    Recipe(type="freeze", trainable_layers=1),
    Recipe(type="full"),
]


@pytest.mark.parametrize("recipe", CASES, ids=lambda recipe: recipe.type)
def test_estimate_matches_what_the_trainer_allocates(recipe, model_dir, biased_model_dir, tmp_path):
    base_dir = biased_model_dir if recipe.type == "bitfit" else model_dir
    shape = shape_of(base_dir)
    parameter_bytes, gradient_bytes, optimizer_bytes, trainable, total = allocated(recipe, base_dir, tmp_path)

    counts = count_parameters(recipe, shape)
    memory = estimate_memory(recipe, shape, precision="fp32", batch_size=2)

    assert counts.trainable == trainable
    assert counts.total == total
    assert memory.parameters_bytes == pytest.approx(parameter_bytes, rel=TOLERANCE)
    assert memory.gradients_bytes == pytest.approx(gradient_bytes, rel=TOLERANCE)
    assert memory.optimizer_bytes == pytest.approx(optimizer_bytes, rel=TOLERANCE)
