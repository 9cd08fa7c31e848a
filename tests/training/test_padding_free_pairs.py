"""Padding-free compute under batches that stay padded outside the model (DPO, classification): the
decoder stack runs only the real tokens, and the log-probabilities, logits, loss and gradients are
those of the padded batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.tiny_model import build_tiny_encoder_model


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def preference_batch(tokenizer) -> dict:
    """TRL's padded DPO batch: [chosen rows; rejected rows], prompts and answers of different lengths."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    examples = [
        {
            "prompt_ids": tokens(tokenizer, prompt),
            "chosen_ids": tokens(tokenizer, chosen),
            "rejected_ids": tokens(tokenizer, rejected),
        }
        for prompt, chosen, rejected in [
            ("What colour is a lime?", "Green.", "It is blue, like the sky on a clear day."),
            ("Name a fruit that is yellow and long, please, in one word.", "Banana.", "A car."),
            ("2+2?", "Four, since two and two make four.", "Five."),
        ]
    ]
    batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(examples)
    assert int((batch["attention_mask"] == 0).sum()) > 10  # it really pads
    return batch


class StackInputs:
    """The shapes of the token ids that reach the decoder stack's embedding, call by call."""

    def __init__(self, model) -> None:
        self.shapes: list[tuple[int, ...]] = []
        model.get_input_embeddings().register_forward_hook(
            lambda module, args, output: self.shapes.append(tuple(args[0].shape))
        )


def causal_lm(model_dir: Path, flattened: bool):
    from transformers import AutoModelForCausalLM

    from worker.training import lm_head, padding_free

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    assert lm_head.install(model, ("log_probs",))
    if flattened:
        padding_free.flatten_padded_batches(model, padding_free.choose_layout(model, "lora"))
    return model


def sequence_log_probs(model, batch: dict) -> torch.Tensor:
    """What TRL's DPO loss starts from: each row's summed log-probability of its answer's tokens."""
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
    return model(**inputs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(dim=1)


class TestPreferencePairs:
    def test_log_probs_and_gradients_are_the_padded_batchs(self, model_dir, preference_batch):
        padded_model, flat_model = causal_lm(model_dir, False), causal_lm(model_dir, True)
        padded, flat = (
            sequence_log_probs(padded_model, preference_batch),
            sequence_log_probs(flat_model, preference_batch),
        )
        assert padded.shape == flat.shape == (6,)
        assert torch.allclose(flat, padded, atol=1e-4), (flat, padded)

        # A DPO-shaped loss through both: the same gradients reach the weights.
        for logps in (padded, flat):
            chosen, rejected = logps.chunk(2)
            (-torch.nn.functional.logsigmoid(0.1 * (chosen - rejected))).mean().backward()
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"):
            flat_grad = flat_model.get_parameter(name).grad
            padded_grad = padded_model.get_parameter(name).grad
            assert torch.allclose(flat_grad, padded_grad, atol=1e-5), name

    def test_the_stack_sees_only_the_real_tokens(self, model_dir, preference_batch):
        model = causal_lm(model_dir, True)
        seen = StackInputs(model)
        with torch.no_grad():
            sequence_log_probs(model, preference_batch)
        assert seen.shapes == [(1, int(preference_batch["attention_mask"].sum()))]

    def test_without_restarting_positions_the_comparison_would_differ(self, model_dir, preference_batch):
        # The real tokens read as one long sequence (no boundaries, positions running on) give other
        # hidden states than the padded rows: the equality above can fail.
        model = causal_lm(model_dir, False)
        ids, mask = preference_batch["input_ids"], preference_batch["attention_mask"]
        with torch.no_grad():
            one_sequence = model.model(input_ids=ids[mask.bool()][None]).last_hidden_state[0]
            padded = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        assert not torch.allclose(one_sequence, padded, atol=1e-3)

    def test_left_padded_and_unpadded_batches_go_through_as_they_are(self, model_dir, preference_batch):
        model = causal_lm(model_dir, True)
        seen = StackInputs(model)
        mask = preference_batch["attention_mask"]
        left = {"input_ids": preference_batch["input_ids"].flip(1), "attention_mask": mask.flip(1)}
        full = {"input_ids": preference_batch["input_ids"][:, :4], "attention_mask": mask[:, :4]}
        with torch.no_grad():
            model.model(**left)
            model.model(**full)
        assert seen.shapes == [tuple(mask.shape), (6, 4)]


class TestClassification:
    def classifier(self, model_dir: Path, flattened: bool):
        from transformers import AutoModelForSequenceClassification

        from worker.training import padding_free

        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=3, attn_implementation="sdpa"
        )
        torch.manual_seed(0)
        torch.nn.init.normal_(model.score.weight, std=0.5)  # the same head in both
        if flattened:
            padding_free.flatten_padded_batches(model, padding_free.choose_layout(model, "lora"))
        return model

    def test_logits_and_loss_are_the_padded_batchs(self, model_dir, tokenizer):
        from transformers import DataCollatorWithPadding

        texts = ["a lime", "a long yellow fruit that monkeys like to eat", "the sky on a clear day"]
        rows = [{**tokenizer(text), "labels": label} for label, text in enumerate(texts)]
        batch = DataCollatorWithPadding(tokenizer)(rows)
        assert tokenizer.padding_side == "right" and int((batch["attention_mask"] == 0).sum()) > 5
        padded_model, flat_model = self.classifier(model_dir, False), self.classifier(model_dir, True)
        seen = StackInputs(flat_model)
        padded, flat = padded_model(**batch), flat_model(**batch)
        assert seen.shapes == [(1, int(batch["attention_mask"].sum()))]
        assert torch.allclose(flat.logits, padded.logits, atol=1e-4), (flat.logits, padded.logits)
        assert flat.loss.item() == pytest.approx(padded.loss.item(), abs=1e-5)

    def test_an_encoder_keeps_padded_batches(self, tmp_path):
        from transformers import AutoModelForSequenceClassification

        from worker.training.padding_free import choose_layout

        encoder = AutoModelForSequenceClassification.from_pretrained(
            build_tiny_encoder_model(tmp_path / "encoder"), num_labels=2
        )
        layout = choose_layout(encoder, "lora")
        assert not layout.padding_free and "not causal" in layout.reason
