"""Direct Preference Optimization on OpenAI's preference format, through TRL's DPOTrainer.

One line per comparison (catalog/formats/preference.py, which the API validates with too):
  {"input": {"messages": [...], "tools": [...]?},
   "preferred_output": [{"role": "assistant", "content": "..."}],
   "non_preferred_output": [{"role": "assistant", "content": "..."}]}

DPO raises the likelihood of the preferred answer relative to the non-preferred one, measured against
a frozen reference: the model as it was before training (for adapter recipes, TRL keeps a frozen copy
of the freshly initialised adapter, which leaves the base model unchanged; for full, freeze and bitfit
a frozen copy of the model). `beta` sets how far the policy may move away from the reference.
The accuracy columns hold the preference accuracy: how often the preferred answer is the more likely.

No compute goes to padding. TRL's own padding-free DPO forward (`DPOConfig.padding_free`) is disabled
in TRL 1.x after a refactor (it falls back to padding with a warning), so TRL gets its padded batch of
[chosen rows; rejected rows] and the decoder stack, the policy's and the reference's, runs only its
real tokens, as one flattened row (worker/training/padding_free.py: `flatten_padded_batches`). An event
names the layout. The LM head scores only the answers' tokens, the ones that have a label
(worker/training/lm_head.py).
Gradient checkpointing, compile and Liger follow the shared rules (worker/training/run.py).
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from catalog.formats import PreferenceExample
from worker.training import lm_head, padding_free
from worker.training.data import DatasetError, read_examples, template_message
from worker.training.methods import PreparedData, supervised_only_settings
from worker.training.progress import ProgressWriter
from worker.training.spec import TrainingSpec

DPO_HEAD_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")


def prepare(spec: TrainingSpec, tokenizer: Any, progress: ProgressWriter) -> PreparedData:
    for ignored in supervised_only_settings(spec):
        progress.message(f"{ignored} does not apply to {spec.method}; it is ignored", "warn")
    training = read_preferences(spec.training_file, "training")
    validation = read_preferences(spec.validation_file, "validation") if spec.validation_file else None
    tokens = sum(_n_tokens(tokenizer, comparison) for comparison in training)
    progress.message(
        f"{len(training)} training comparisons, {tokens} tokens per epoch"
        + (f"; {len(validation)} validation comparisons" if validation else "")
    )
    return PreparedData(
        train_dataset=Dataset.from_list(training),
        eval_dataset=Dataset.from_list(validation) if validation else None,
        n_examples=len(training),
        tokens_per_epoch=tokens,
        task="CAUSAL_LM",
        accuracy_key="rewards/accuracies",
    )


def make_trainer(
    spec: TrainingSpec,
    model: Any,
    tokenizer: Any,
    data: PreparedData,
    args: dict[str, Any],
    callbacks: list,
    progress: ProgressWriter,
) -> DPOTrainer:
    config = DPOConfig(**args, beta=spec.beta, max_length=spec.recipe.max_seq_length)
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # What DPOTrainer asks its fused LM head for: the log-probabilities and its metrics' fields, and
    # the WPO weights' when it weights; its reference model (where it has one) only the log-probabilities.
    outputs = DPO_HEAD_OUTPUTS + (("log_sum_sq_probs",) if trainer.use_weighting else ())
    lm_head.install_or_say(trainer.model, outputs, progress)
    if trainer.ref_model is not None:
        lm_head.install(trainer.ref_model, ("log_probs",))
    layout = padding_free.choose_layout(trainer.model, spec.recipe.type)
    if layout.padding_free:
        for each in (trainer.model, trainer.ref_model):
            if each is not None:
                padding_free.flatten_padded_batches(each, layout)
    progress.message(layout.reason)
    return trainer


def read_preferences(path: str, purpose: str) -> list[dict[str, Any]]:
    """Preference lines -> TRL's conversational {"prompt", "chosen", "rejected", "tools"?} rows."""
    try:
        return [_comparison(example) for _, example in read_examples(path, "dpo")]
    except DatasetError as error:
        error.purpose = purpose
        raise


def _comparison(example: Any) -> dict[str, Any]:
    assert isinstance(example, PreferenceExample)  # what read_examples reads for dpo
    row: dict[str, Any] = {
        "prompt": [template_message(message) for message in example.input.messages],
        "chosen": [template_message(example.preferred_output[0])],
        "rejected": [template_message(example.non_preferred_output[0])],
    }
    if example.input.tools is not None:
        row["tools"] = [tool.definition for tool in example.input.tools]
    return row


def _n_tokens(tokenizer: Any, comparison: dict[str, Any]) -> int:
    # Both answers are run through the model with the prompt: what one epoch bills.
    conversations = (comparison["prompt"] + comparison[answer] for answer in ("chosen", "rejected"))
    return sum(
        len(tokenizer.apply_chat_template(conversation, tokenize=True)["input_ids"])
        for conversation in conversations
    )
