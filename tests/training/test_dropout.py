"""LoRA's sparse dropout on the CPU: the same law as torch.nn.Dropout (each element dropped with
probability p, independently; the kept ones scaled by 1 / (1 - p)), the right gradient, seeded, and
swapped into a LoRA model's layers by a CPU run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.training.trainer_runs import toy_spec, train_in_process
from worker.training.dropout import SparseDropout, dropped_positions, install
from worker.training.spec import Recipe


def within_sigmas(count: float, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


class TestDroppedPositions:
    @pytest.mark.parametrize("p", [0.05, 0.2])
    def test_each_element_is_dropped_with_probability_p(self, p: float):
        torch.manual_seed(0)
        n = 2_000_000
        positions = dropped_positions(n, p)
        assert positions.dtype == torch.int64
        assert bool((positions[1:] > positions[:-1]).all())  # ascending, no repeats
        assert int(positions.min()) >= 0 and int(positions.max()) < n
        assert within_sigmas(positions.numel(), n, p)
        # Uniform over the tensor: each tenth holds a tenth of the drops.
        tenths = torch.bincount(positions // (n // 10), minlength=10)
        assert all(within_sigmas(int(count), n // 10, p) for count in tenths)

    def test_every_position_is_dropped_independently_the_first_included(self):
        # Many small masks: position k is dropped in about p of them for every k, and a drop at 0
        # says nothing about a drop at 1 (the gaps' law, not only their mean).
        torch.manual_seed(1)
        p, draws, n = 0.05, 20_000, 8
        masks = torch.zeros(draws, n, dtype=torch.bool)
        for row in range(draws):
            masks[row, dropped_positions(n, p)] = True
        assert all(within_sigmas(int(count), draws, p) for count in masks.sum(dim=0))
        both = int((masks[:, 0] & masks[:, 1]).sum())
        assert abs(both - draws * p * p) <= 5 * math.sqrt(draws * p * p) + 1

    def test_gaps_drawn_in_several_batches_make_the_same_law(self):
        torch.manual_seed(2)
        n, p = 200_000, 0.05
        positions = dropped_positions(n, p, batch=64)  # far fewer than the ~10,000 drops
        assert bool((positions[1:] > positions[:-1]).all()) and int(positions.max()) < n
        assert within_sigmas(positions.numel(), n, p)

    def test_a_seed_repeats_the_mask(self):
        torch.manual_seed(3)
        first = dropped_positions(100_000, 0.05)
        torch.manual_seed(3)
        assert torch.equal(first, dropped_positions(100_000, 0.05))


class TestSparseDropout:
    def test_kept_elements_are_scaled_and_the_gradient_follows_the_mask(self):
        torch.manual_seed(4)
        p = 0.05
        x = (torch.rand(300, 500) + 0.5).requires_grad_()  # no zeros of its own
        out = SparseDropout(p).train()(x)
        kept = out != 0
        assert within_sigmas(int((~kept).sum()), x.numel(), p)
        assert torch.allclose(out[kept], x[kept] / (1 - p))
        upstream = torch.randn_like(out)
        out.backward(upstream)
        assert torch.allclose(x.grad, upstream * kept / (1 - p))

    def test_a_non_contiguous_input_is_dropped_as_a_contiguous_one(self):
        x = torch.rand(200, 100).t() + 0.5
        assert not x.is_contiguous()
        out = SparseDropout(0.1).train()(x)
        assert out.shape == x.shape
        kept = out != 0
        assert torch.allclose(out[kept], x[kept] / 0.9)

    def test_evaluation_and_p_zero_leave_the_input_alone(self):
        x = torch.rand(10, 10)
        assert SparseDropout(0.05).eval()(x) is x
        assert SparseDropout(0.0).train()(x) is x


class TestInstall:
    def lora_model(self, model_dir: Path, dropout: float):
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        config = LoraConfig(r=4, lora_dropout=dropout, target_modules="all-linear")
        return get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config)

    def test_every_lora_layer_s_dropout_is_replaced(self, model_dir):
        model = self.lora_model(model_dir, 0.05)
        layers = [
            m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
        ]
        assert install(model) == len(layers) > 0
        assert all(isinstance(m.lora_dropout["default"], SparseDropout) for m in layers)
        assert all(m.lora_dropout["default"].p == 0.05 for m in layers)

    def test_no_dropout_and_large_dropout_are_left_as_they_are(self, model_dir):
        assert install(self.lora_model(model_dir, 0.0)) == 0  # peft's Identity
        assert install(self.lora_model(model_dir, 0.5)) == 0  # too many drops to draw apart

    def test_a_cpu_run_says_so_and_trains(self, tmp_path: Path, model_dir):
        run = train_in_process(
            toy_spec(tmp_path, model_dir, n_train=8, n_epochs=2, recipe=Recipe(max_seq_length=64))
        )
        messages = [event["message"] for event in run.of("message")]
        assert any(
            message.startswith("LoRA dropout: masks drawn sparsely on the CPU (") for message in messages
        )
        assert run.losses()[-1] < run.losses()[0]
