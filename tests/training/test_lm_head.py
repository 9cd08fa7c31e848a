"""The LM head of supervised and DPO training: the labelled positions only, with the loss, gradients
and metrics of the model's own head and of TRL's fused one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from tests.training.trainer_runs import toy_spec, train_in_process, varied_length_rows
from worker.training import lm_head
from worker.training.spec import Recipe

ALL_OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


@pytest.fixture(scope="module")
def batch(model_dir):
    """A padded batch of four chats of different lengths, loss on the assistant's tokens only."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows, pad_token_id = varied_length_rows(model_dir, 4, longer_question=3)
    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id)(rows)


@pytest.fixture
def model(model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


class TestSameTraining:
    def test_loss_and_gradients_are_those_of_the_models_own_head(self, model, batch) -> None:
        own = copy.deepcopy(model)
        expected = own(**batch, use_cache=False)
        expected.loss.backward()

        assert lm_head.install(model, ("log_probs",))
        ours = model(**batch, fused_lm_head=True)
        ours.loss.backward()

        assert ours.loss.item() == pytest.approx(expected.loss.item(), abs=1e-6)
        want, got = gradients(own), gradients(model)
        assert want.keys() == got.keys() and len(want) > 10
        for name in want:
            assert torch.allclose(got[name], want[name], atol=1e-6, rtol=1e-4), name

    def test_every_field_is_that_of_trls_fused_head(self, model, batch) -> None:
        from trl.trainer.utils import add_fused_lm_head

        # A random model is never right: every other label becomes its top prediction, so that
        # is_top1 is compared on both values.
        with torch.no_grad():
            predicted = model(**batch).logits.argmax(-1)
        labels = batch["labels"].clone()
        positions = (labels[:, 1:] != -100).nonzero()[::2]
        labels[positions[:, 0], positions[:, 1] + 1] = predicted[positions[:, 0], positions[:, 1]]
        batch = {**batch, "labels": labels}

        trls = copy.deepcopy(model)
        add_fused_lm_head(trls, outputs=ALL_OUTPUTS)
        assert lm_head.install(model, ALL_OUTPUTS)
        with torch.no_grad():
            expected = trls(**batch, fused_lm_head=True)
            ours = model(**batch, fused_lm_head=True)
        assert torch.equal(ours.label_mask, expected.label_mask)
        for field in ALL_OUTPUTS:
            want, got = getattr(expected, field), getattr(ours, field)
            assert got.shape == want.shape, field
            if field == "is_top1":
                assert torch.equal(got, want)
            else:
                assert torch.allclose(got, want, atol=1e-5), field
        assert 0 < int(ours.is_top1.sum()) < int(ours.label_mask.sum())

    def test_past_the_memory_bound_the_tiled_kernel_gives_the_same(self, model, batch, monkeypatch) -> None:
        lm_head.install(model, ALL_OUTPUTS)
        with torch.no_grad():
            materialised = model(**batch, fused_lm_head=True)
        monkeypatch.setattr(lm_head, "MATERIALISE_BYTES", 0)
        with torch.no_grad():
            tiled = model(**batch, fused_lm_head=True)
        assert tiled.loss.item() == pytest.approx(materialised.loss.item(), abs=1e-6)
        assert torch.allclose(tiled.entropy, materialised.entropy, atol=1e-5)


class TestOnlyLabelledPositions:
    def test_the_prompt_never_reaches_the_vocabulary_projection(self, model, batch) -> None:
        rows: list[int] = []
        model.get_output_embeddings().register_forward_hook(
            lambda _m, args, _o: rows.append(args[0].shape[0])
        )
        lm_head.install(model, ("log_probs",))
        model(**batch, fused_lm_head=True)
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        assert rows == [labelled]
        assert labelled < batch["input_ids"].numel() // 2  # the prompt and the padding are most of it

    def test_without_fused_lm_head_the_forward_is_the_models_own(self, model, batch) -> None:
        own = copy.deepcopy(model)
        lm_head.install(model, ("log_probs",))
        with torch.no_grad():
            assert torch.equal(model(**batch).logits, own(**batch).logits)

    def test_heads_that_scale_their_logits_keep_trls(self, model) -> None:
        model.config.final_logit_softcapping = 30.0
        assert lm_head.applies(model) == (False, "the LM head scales its logits (final_logit_softcapping)")
        assert not lm_head.install(model, ("log_probs",))


class TestRuns:
    def test_a_supervised_run_says_so_and_trains(self, tmp_path: Path, model_dir) -> None:
        run = train_in_process(toy_spec(tmp_path, model_dir, n_train=8, n_epochs=2))
        messages = [event["message"] for event in run.of("message")]
        assert "LM head: only the positions that have a label are scored" in messages
        assert run.losses()[-1] < run.losses()[0]
        accuracies = [event["train_mean_token_accuracy"] for event in run.of("metrics")]
        assert all(0.0 <= value <= 1.0 for value in accuracies) and max(accuracies) > 0.0

    def test_a_dpo_run_says_so_and_trains(self, tmp_path: Path, model_dir) -> None:
        from tests.support.tiny_model import toy_preference_examples, write_jsonl

        spec = toy_spec(
            tmp_path,
            model_dir,
            n_train=8,
            n_epochs=2,
            method="dpo",
            training_file=str(write_jsonl(tmp_path / "prefs.jsonl", toy_preference_examples(8))),
            recipe=Recipe(max_seq_length=64, lora_dropout=0.0),
        )
        run = train_in_process(spec)
        messages = [event["message"] for event in run.of("message")]
        assert "LM head: only the positions that have a label are scored" in messages
        assert run.losses()[-1] < run.losses()[0]
