"""Padding-free batches (the supervised default): the same loss as padded batches of the same
examples, with no compute on padding, and the layout each attention implementation gets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.training.trainer_runs import toy_spec, train_in_process, varied_length_rows
from worker.training.spec import Recipe


@pytest.fixture(scope="module")
def batch_parts(model_dir):
    return varied_length_rows(model_dir, 4, longer_question=3)


def collate(rows, pad_token_id: int, padding_free: bool) -> dict:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)(rows)


def forward(model_dir, implementation: str, batch: dict):
    from transformers import AutoModelForCausalLM

    from worker.training import padding_free

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    layout = padding_free.BatchLayout(True, implementation, "")
    padding_free.apply(model, layout)
    with torch.no_grad():
        return model(**batch, use_cache=False)


class TestSameLoss:
    def test_padding_free_loss_equals_padded_loss_on_the_same_batch(self, model_dir, batch_parts):
        from worker.training.padding_free import VARLEN_SDPA

        rows, pad_token_id = batch_parts
        padded = collate(rows, pad_token_id, padding_free=False)
        flat = collate(rows, pad_token_id, padding_free=True)
        assert int((padded["attention_mask"] == 0).sum()) > 0  # the padded batch pads
        assert flat["input_ids"].shape == (1, sum(len(row["input_ids"]) for row in rows))  # not one pad

        padded_loss = forward(model_dir, "sdpa", padded).loss.item()
        varlen = forward(model_dir, VARLEN_SDPA, flat)
        dense_mask = forward(model_dir, "sdpa", flat)  # transformers' block-diagonal mask, for reference
        assert varlen.loss.item() == pytest.approx(padded_loss, abs=1e-5)
        assert dense_mask.loss.item() == pytest.approx(padded_loss, abs=1e-5)
        # Token by token, not only on average: each example's logits are those it gets alone.
        padded_logits = forward(model_dir, "sdpa", padded).logits
        start = 0
        for index, row in enumerate(rows):
            n = len(row["input_ids"])
            assert torch.allclose(varlen.logits[0, start : start + n], padded_logits[index, :n], atol=1e-4)
            start += n

    def test_the_comparison_would_see_one_example_attending_to_another(self, model_dir, batch_parts):
        # Without the example boundaries the per-example attention is one causal sequence over the
        # whole row: later examples see earlier ones, and the loss moves. The test above can fail.
        from worker.training.padding_free import VARLEN_SDPA

        rows, pad_token_id = batch_parts
        padded = collate(rows, pad_token_id, padding_free=False)
        flat = collate(rows, pad_token_id, padding_free=True)
        run_on = {key: flat[key] for key in ("input_ids", "labels", "position_ids")}
        contaminated = forward(model_dir, VARLEN_SDPA, run_on).loss.item()
        assert abs(contaminated - forward(model_dir, "sdpa", padded).loss.item()) > 1e-3


class TestLayout:
    def test_sdpa_gets_per_example_attention(self, model_dir):
        from transformers import AutoModelForCausalLM

        from worker.training.padding_free import VARLEN_SDPA, choose_layout

        sdpa = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
        layout = choose_layout(sdpa, "lora")
        assert layout.padding_free and layout.attention == VARLEN_SDPA

    def test_eager_attention_and_virtual_tokens_keep_padded_batches(self, model_dir):
        from transformers import AutoModelForCausalLM

        from worker.training.padding_free import choose_layout

        eager = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
        assert not choose_layout(eager, "lora").padding_free
        sdpa = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
        layout = choose_layout(sdpa, "prompt_tuning")
        assert not layout.padding_free and "virtual tokens" in layout.reason


def eager_copy(model_dir: Path, directory: Path) -> Path:
    """The tiny model with eager attention in its config.json: a run on it gets padded batches."""
    copy = Path(shutil.copytree(model_dir, directory))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "attn_implementation": "eager"}))
    return copy


class TestRun:
    def test_a_default_run_is_padding_free_and_trains_as_a_padded_one(self, tmp_path: Path, model_dir):
        # No dropout: the two layouts draw different dropout masks, which would move the losses.
        common = dict(n_train=8, n_epochs=2, recipe=Recipe(max_seq_length=64, lora_dropout=0.0))
        flat = train_in_process(toy_spec(tmp_path / "flat", model_dir, **common))
        padded = train_in_process(
            toy_spec(tmp_path / "padded", eager_copy(model_dir, tmp_path / "eager"), **common)
        )

        messages = [event["message"] for event in flat.of("message")]
        assert any(message.startswith("padding-free batches") for message in messages), messages
        padded_messages = [event["message"] for event in padded.of("message")]
        assert any(message.startswith("padded batches") for message in padded_messages), padded_messages
        # Same examples per step: same steps, same losses step by step.
        assert flat.of("started")[0]["total_steps"] == padded.of("started")[0]["total_steps"] == 4
        assert flat.losses() == pytest.approx(padded.losses(), abs=2e-4)
        assert flat.losses()[-1] < flat.losses()[0]
