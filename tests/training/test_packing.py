"""Packing: several examples in one padding-free row give the same loss as a padded batch of them.

The recipe packs with TRL (best-fit into rows of max_seq_length, flattened, position_ids restarting
at each example) and relies on transformers building a block-diagonal mask from those position_ids,
so that no example attends to another. These tests hold that whole chain to the padded result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.training.trainer_runs import toy_spec, train_in_process, varied_length_rows
from worker.training.spec import Recipe


@pytest.fixture(scope="module")
def model_and_dataset(model_dir):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    rows, pad_token_id = varied_length_rows(model_dir, 6, longer_question=4)
    dataset = Dataset.from_dict(
        {"input_ids": [row["input_ids"] for row in rows], "labels": [row["labels"] for row in rows]}
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()  # eval: no dropout
    return model, dataset, pad_token_id


def loss_of(model, batch) -> float:
    # use_cache=False as SFTTrainer passes it: with a cache, transformers skips the packed-sequence
    # mask (it can't tell a packed row from a continued one), and examples would see each other.
    with torch.no_grad():
        return model(**batch, use_cache=False).loss.item()


def collate(dataset, pad_token_id: int, padding_free: bool) -> dict:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)
    return collator([dataset[index] for index in range(len(dataset))])


class TestPackedBatches:
    def test_packed_loss_equals_padded_loss_with_no_padding(self, model_and_dataset):
        from trl.data_utils import pack_dataset

        model, dataset, pad_token_id = model_and_dataset
        padded = collate(dataset, pad_token_id, padding_free=False)
        packed_rows = pack_dataset(dataset, seq_length=256, strategy="bfd")
        packed = collate(packed_rows, pad_token_id, padding_free=True)

        assert len(packed_rows) < len(dataset)
        n_tokens = sum(len(ids) for ids in dataset["input_ids"])
        assert int((padded["attention_mask"] == 0).sum()) > 0
        assert packed["input_ids"].numel() == n_tokens  # not one padded token
        assert loss_of(model, packed) == pytest.approx(loss_of(model, padded), abs=1e-4)

    def test_the_comparison_would_see_examples_attending_to_each_other(self, model_and_dataset):
        # The same flat row with positions that run on, as naive concatenation would give: one long
        # causal sequence, so later examples attend to earlier ones, and the loss moves.
        model, dataset, pad_token_id = model_and_dataset
        padded = collate(dataset, pad_token_id, padding_free=False)
        flat = collate(dataset, pad_token_id, padding_free=True)
        labels = flat["labels"]
        contaminated = {
            "input_ids": flat["input_ids"],
            "labels": labels,
            "position_ids": torch.arange(labels.shape[1])[None],
        }

        assert abs(loss_of(model, contaminated) - loss_of(model, padded)) > 1e-3


class TestPackedRun:
    def test_packed_run_trains_in_fewer_steps_on_the_same_tokens(self, tmp_path: Path, model_dir):
        common = dict(n_train=8, n_epochs=3, batch_size=1, learning_rate=5e-3)
        unpacked = train_in_process(
            toy_spec(tmp_path / "unpacked", model_dir, **common, recipe=Recipe(max_seq_length=256))
        )
        packed = train_in_process(
            toy_spec(
                tmp_path / "packed", model_dir, **common, recipe=Recipe(max_seq_length=256, packing=True)
            )
        )

        packed_steps = packed.of("started")[0]["total_steps"]
        assert packed_steps < unpacked.of("started")[0]["total_steps"]
        assert packed.outcome.trained_tokens == unpacked.outcome.trained_tokens
        losses = packed.losses()
        assert len(losses) == packed_steps
        assert losses[-1] < losses[0]
