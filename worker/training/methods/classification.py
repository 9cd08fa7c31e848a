"""Sequence classification on lines of {"text": "...", "label": ...}, on an encoder or a decoder base.

The base gets a new classification head (num_labels outputs) that always trains; the recipe decides
what else does (lora: adapters plus the head; freeze with trainable_layers 0: the head alone). Labels
are strings: the spec's `labels` in that order, or else the sorted set of str(label) of the training
file; id i is labels[i], and the artifact's config.json carries them as id2label.
The accuracy columns hold the share of examples whose highest-scoring label is the right one.

The head reads each row's last real token, so the batch reaching it stays padded, one example a row.
On a decoder base no compute goes to padding all the same: the decoder stack runs the batch's real
tokens as one flattened row and hands their hidden states back in the padded shape
(worker/training/padding_free.py: `flatten_padded_batches`). An encoder attends both ways and keeps
padded batches; there `group_by_length` is what cuts the padding. An event names the layout.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from catalog.formats import ClassificationExample
from worker.training import padding_free
from worker.training.data import DatasetError, read_examples
from worker.training.methods import PreparedData, supervised_only_settings
from worker.training.progress import ProgressWriter
from worker.training.spec import TrainingSpec


def prepare(spec: TrainingSpec, tokenizer: Any, progress: ProgressWriter) -> PreparedData:
    for ignored in supervised_only_settings(spec):
        progress.message(f"{ignored} applies to supervised training only; {spec.method} ignores it", "warn")
    training = read_labelled_text(spec.training_file, "training")
    labels = spec.labels or sorted({label for _, label in training})
    if len(labels) < 2:
        raise DatasetError("classification needs at least two different labels", purpose="training")
    validation = read_labelled_text(spec.validation_file, "validation") if spec.validation_file else None
    max_length = spec.recipe.max_seq_length
    train_dataset = _to_dataset(tokenizer, training, labels, max_length, "training")
    eval_dataset = (
        _to_dataset(tokenizer, validation, labels, max_length, "validation") if validation else None
    )
    tokens = sum(len(ids) for ids in train_dataset["input_ids"])
    progress.message(
        f"{len(training)} training examples, {tokens} tokens per epoch, {len(labels)} labels"
        + (f"; {len(validation)} validation examples" if validation else "")
    )
    return PreparedData(
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        n_examples=len(training),
        tokens_per_epoch=tokens,
        task="SEQ_CLS",
        accuracy_key="accuracy",
        labels=labels,
        model_kwargs={
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: index for index, label in enumerate(labels)},
        },
    )


def make_trainer(
    spec: TrainingSpec,
    model: Any,
    tokenizer: Any,
    data: PreparedData,
    args: dict[str, Any],
    callbacks: list,
    progress: ProgressWriter,
) -> Trainer:
    # label_names: the Trainer can't find "labels" in the signature of a PEFT wrapper's forward, and
    # without it would skip the evaluation loss.
    config = TrainingArguments(**args, label_names=["labels"])
    layout = padding_free.choose_layout(model, spec.recipe.type)
    if layout.padding_free and tokenizer.padding_side != "right":
        layout = padding_free.BatchLayout(False, None, "padded batches: the tokenizer pads on the left")
    if layout.padding_free:
        padding_free.flatten_padded_batches(model, layout)
    progress.message(layout.reason)
    return ClassificationTrainer(
        model=model,
        args=config,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=callbacks,
    )


class ClassificationTrainer(Trainer):
    """Logs the accuracy of the batches since the last log, beside the loss (as TRL logs token accuracy)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._accuracies: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        correct = (outputs.logits.argmax(dim=-1) == labels).float().mean().item()
        self._accuracies["train" if model.training else "eval"].append(correct)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if "eval_loss" in logs else "train"
        accuracies = self._accuracies[mode]
        if accuracies and ("loss" in logs or mode == "eval"):
            logs["eval_accuracy" if mode == "eval" else "accuracy"] = sum(accuracies) / len(accuracies)
            accuracies.clear()
        super().log(logs, start_time)


def read_labelled_text(path: str, purpose: str) -> list[tuple[str, str]]:
    """Classification lines -> (text, label name) pairs; labels are named str(label)."""
    try:
        examples = read_examples(path, "classification")
    except DatasetError as error:
        error.purpose = purpose
        raise
    labelled = []
    for _, example in examples:
        assert isinstance(example, ClassificationExample)  # what read_examples reads for classification
        labelled.append((example.text, example.label_name))
    return labelled


def _to_dataset(
    tokenizer: Any, examples: list[tuple[str, str]], labels: list[str], max_seq_length: int, purpose: str
) -> Dataset:
    label_ids = {label: index for index, label in enumerate(labels)}
    unknown = sorted({label for _, label in examples if label not in label_ids})
    if unknown:
        raise DatasetError(
            f"labels not in the job's label set ({', '.join(labels)}): {', '.join(unknown)}", purpose=purpose
        )
    encoded = tokenizer([text for text, _ in examples], truncation=True, max_length=max_seq_length)
    return Dataset.from_dict(
        {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": [label_ids[label] for _, label in examples],
        }
    )
