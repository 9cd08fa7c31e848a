"""Supervised fine-tuning on chat (or prompt/completion) examples, through TRL's SFTTrainer.

The data arrives pre-tokenized with our own labels (assistant tokens only, unless train_on_inputs),
so SFTTrainer keeps them as they are instead of re-rendering the conversations itself.

Batches are padding-free by default (worker/training/padding_free.py): a step's examples laid end to
end in one row, position ids restarting at every example, attention kept within each example, so no
compute goes to padding while the steps and the loss stay those of padded batches. Where the
model's attention implementation would make that slower than padding, batches are padded, and an
event says which layout the run uses.

The LM head scores only the positions that have a label (worker/training/lm_head.py): the prompt's
tokens go through the model but never through the vocabulary projection.

Packing (opt-in): examples are packed best-fit into rows of max_seq_length and fed the same way.
Packing changes how many examples make a batch, and so the number of steps.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from worker.training import lm_head, padding_free
from worker.training.data import TokenizedDataset, read_dataset, tokenization_warnings
from worker.training.methods import PreparedData
from worker.training.progress import ProgressWriter
from worker.training.spec import TrainingSpec

SFT_HEAD_OUTPUTS = ("log_probs", "entropy", "is_top1")
"""What TRL's SFTTrainer asks its fused LM head for (the loss, and its entropy and accuracy metrics)."""


def prepare(spec: TrainingSpec, tokenizer: Any, progress: ProgressWriter) -> PreparedData:
    recipe = spec.recipe
    training = read_dataset(
        tokenizer, spec.training_file, recipe.max_seq_length, "training", recipe.train_on_inputs
    )
    validation = (
        read_dataset(
            tokenizer, spec.validation_file, recipe.max_seq_length, "validation", recipe.train_on_inputs
        )
        if spec.validation_file
        else None
    )
    progress.message(
        f"{len(training.examples)} training examples, {training.n_tokens} tokens per epoch"
        + (f"; {len(validation.examples)} validation examples" if validation else "")
    )
    for warning in tokenization_warnings(training, "training", recipe.max_seq_length):
        progress.message(warning, level="warn")
    if validation:
        for warning in tokenization_warnings(validation, "validation", recipe.max_seq_length):
            progress.message(warning, level="warn")
    return PreparedData(
        train_dataset=to_dataset(training),
        eval_dataset=to_dataset(validation) if validation else None,
        n_examples=len(training.examples),
        tokens_per_epoch=training.n_tokens,
        task="CAUSAL_LM",
        accuracy_key="mean_token_accuracy",
    )


def make_trainer(
    spec: TrainingSpec,
    model: Any,
    tokenizer: Any,
    data: PreparedData,
    args: dict[str, Any],
    callbacks: list,
    progress: ProgressWriter,
) -> SFTTrainer:
    recipe = spec.recipe
    layout = padding_free.choose_layout(model, recipe.type)
    # Packing always feeds flattened rows (TRL's best-fit packing needs it); it still gains from the
    # per-example attention where the layout has one.
    flattened = recipe.packing or layout.padding_free
    if flattened:
        padding_free.apply(model, layout)
    if not recipe.packing:
        progress.message(layout.reason)
    config = SFTConfig(
        **args,
        # The examples are already truncated at max_seq_length (data.py); TRL refuses a max_length
        # for flattened batches without packing, since it would not enforce it.
        max_length=recipe.max_seq_length if recipe.packing or not flattened else None,
        packing=recipe.packing,
        packing_strategy="bfd",
        padding_free=flattened,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    lm_head.install_or_say(trainer.model, SFT_HEAD_OUTPUTS, progress)
    return trainer


def to_dataset(tokenized: TokenizedDataset) -> Dataset:
    return Dataset.from_dict(
        {
            "input_ids": [example.input_ids for example in tokenized.examples],
            "labels": [example.labels for example in tokenized.examples],
        }
    )
