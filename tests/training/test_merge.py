"""The merged export of a classification adapter: a sequence classifier with the adapter's head and
labels, loaded by plain transformers, scoring as base + adapter does."""

from __future__ import annotations

from pathlib import Path

import torch

from worker.training.merge import TOLERANCE, merge_adapter

LABELS = {0: "sour", 1: "sweet", 2: "bitter"}


def test_a_classification_adapter_merges_into_a_classifier_with_its_labels(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(3)
    head = {"num_labels": 3, "id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, **head)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
    model = get_peft_model(base, lora)
    with torch.no_grad():  # B starts at zero: give the adapter an effect to merge
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "score" in name:
                parameter.normal_(0, 0.2)
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(adapter_dir)
    base.config.save_pretrained(adapter_dir)  # the trainer saves the labelled config beside the adapter
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(adapter_dir)

    report = merge_adapter(adapter_dir, tiny_model_dir, tmp_path / "merged")

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    prompt = tokenizer("is a lemon sweet?", return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert merged.config.id2label == LABELS
    fresh_base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, **head)
    adapted = PeftModel.from_pretrained(fresh_base, adapter_dir).eval()
    with torch.no_grad():
        expected, got = adapted(**prompt).logits, merged(**prompt).logits
    assert got.shape == (1, 3)
    assert (got - expected).abs().max() < TOLERANCE[torch.float32]
    assert report.max_abs_diff < report.tolerance
