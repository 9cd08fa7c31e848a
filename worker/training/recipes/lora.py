"""LoRA supervised fine-tuning, read top to bottom.

tokenizer -> tokenized data with assistant-only labels -> base model -> LoRA wrap -> TRL SFTTrainer
-> train -> adapter + result file. The base weights stay frozen; only the low-rank matrices train,
so the artifact is a small PEFT adapter that loads on top of the unchanged base model.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import SFTConfig, SFTTrainer

from worker.training.artifacts import TrainingOutcome, save_adapter, write_result_file
from worker.training.callbacks import ProgressCallback
from worker.training.data import TokenizedDataset, read_dataset, tokenization_warnings
from worker.training.progress import ProgressWriter
from worker.training.spec import TrainingSpec


def train(spec: TrainingSpec, progress: ProgressWriter) -> TrainingOutcome:
    recipe = spec.recipe
    # Seeds python, numpy and torch: the LoRA initialisation and the data order follow spec.seed.
    set_seed(spec.seed)
    use_cuda = torch.cuda.is_available()
    use_bf16 = use_cuda and torch.cuda.is_bf16_supported()

    # Tokenizer and data first: a bad file should fail before minutes of model loading.
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_dir)
    if tokenizer.pad_token is None:
        # Padding positions carry label -100 and attention 0, so reusing eos for them is harmless.
        tokenizer.pad_token = tokenizer.eos_token
    training = read_dataset(tokenizer, spec.training_file, recipe.max_seq_length, "training")
    validation = (
        read_dataset(tokenizer, spec.validation_file, recipe.max_seq_length, "validation")
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

    # Base model, frozen, wrapped with LoRA. bf16 where the GPU supports it, float32 otherwise (CPU
    # kernels for half precision are slow or missing).
    base_model = AutoModelForCausalLM.from_pretrained(
        spec.base_model_dir, dtype=torch.bfloat16 if use_bf16 else torch.float32
    )
    lora_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.target_modules,
    )
    model = get_peft_model(base_model, lora_config)

    trainer_dir = Path(spec.output_dir) / "trainer"
    config = SFTConfig(
        output_dir=str(trainer_dir),
        num_train_epochs=spec.n_epochs,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        seed=spec.seed,
        data_seed=spec.seed,
        # One metrics line per optimizer step, as OpenAI reports them.
        logging_steps=1,
        eval_strategy="epoch" if validation else "no",
        # Checkpoints are not part of this recipe yet: the adapter is saved once, at the end.
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        max_length=recipe.max_seq_length,
        # Recompute activations in the backward pass: LoRA runs are bound by GPU memory, not compute.
        # (TRL's default too; transformers 5 renamed gradient_checkpointing to this.)
        activation_checkpointing=True,
        use_cpu=not use_cuda,
        bf16=use_bf16,
    )
    callback = ProgressCallback(
        progress,
        n_examples=len(training.examples),
        n_epochs=spec.n_epochs,
        has_validation=validation is not None,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=_to_dataset(training),
        eval_dataset=_to_dataset(validation) if validation else None,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()

    adapter_dir = save_adapter(trainer.model, tokenizer, spec)
    result_file = write_result_file(callback.rows, spec.result_file)
    with contextlib.suppress(OSError):  # the Trainer makes its output_dir even when it saves nothing there
        trainer_dir.rmdir()
    return TrainingOutcome(
        trained_tokens=training.n_tokens * spec.n_epochs, adapter_dir=adapter_dir, result_file=result_file
    )


def _to_dataset(tokenized: TokenizedDataset) -> Dataset:
    # Pre-tokenized columns: SFTTrainer keeps our labels as they are (it only re-applies max_length,
    # which the examples already respect) instead of re-rendering the conversations itself.
    return Dataset.from_dict(
        {
            "input_ids": [example.input_ids for example in tokenized.examples],
            "labels": [example.labels for example in tokenized.examples],
        }
    )
