"""One training run, top to bottom, shared by every recipe and method.

spec -> precision -> tokenizer -> data (the method) -> model (the recipe) -> trainer (the method)
-> train, with progress, checkpoints and stop-on-SIGTERM -> artifact + result file.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, set_seed

from catalog.methods import method as method_row
from worker.training import distributed, fsdp
from worker.training.artifacts import (
    StoppedOutcome,
    TrainingOutcome,
    artifact_format,
    save_artifact,
    write_result_file,
)
from worker.training.base_model import BaseModel
from worker.training.callbacks import ProgressCallback
from worker.training.checkpointing import (
    HEADROOM_FACTOR,
    estimated_bytes,
    gpu_free_bytes,
    resolve_gradient_checkpointing,
    weights_bytes,
)
from worker.training.checkpoints import CheckpointCallback, StopRequest, load_run_state, resumed_step
from worker.training.kernels import CompileWarmupCallback, kernel_arguments
from worker.training.methods import get_method
from worker.training.precision import Precision, resolve_precision
from worker.training.progress import ProgressWriter
from worker.training.recipes import get_recipe
from worker.training.spec import TrainingSpec


def train(spec: TrainingSpec, progress: ProgressWriter) -> TrainingOutcome | StoppedOutcome:
    # From the start: a pause that arrives while the model loads stops after the first step.
    stop = StopRequest()
    stop.install()
    # A distributed run's ranks meet before anything else (a no-op in one process but for fsdp's).
    sharded = spec.recipe.distributed == "fsdp"
    distributed.init_process_group(alone_too=sharded)
    # Seeds python, numpy and torch: adapter initialisation, dropout and data order follow spec.seed.
    set_seed(spec.seed)
    recipe_family = get_recipe(spec.recipe.type)
    method = get_method(spec.method)
    resumed_rows = load_run_state(Path(spec.resume_from)) if spec.resume_from else None
    precision = resolve_precision(spec.recipe.precision)
    if precision.warning:
        progress.message(precision.warning, level="warn")
    spec = _with_resolved_checkpointing(spec, precision, recipe_family, progress)

    # Tokenizer and data first: a bad file should fail before minutes of model loading.
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_dir)
    if tokenizer.pad_token is None:
        # Padding positions carry label -100 and attention 0, so reusing eos for them is harmless.
        tokenizer.pad_token = tokenizer.eos_token
    data = method.prepare(spec, tokenizer, progress)

    model = recipe_family.build(spec, BaseModel(spec.base_model_dir, data.task, precision, data.model_kwargs))
    if model.config.pad_token_id is None:
        # Sequence classifiers find each example's last token through the pad id.
        model.config.pad_token_id = tokenizer.pad_token_id
    if sharded:
        fsdp.leave_placement_to_fsdp(model)

    def export(trained: Any, directory: Path) -> Path:
        # Called on every rank. ddp: every rank holds the whole trained model, rank 0 writes it. fsdp:
        # every rank sends its shards to rank 0 (an adapter's only), which writes what they make.
        state = fsdp.full_state(trained, trainable_only=spec.recipe.is_peft) if sharded else None
        if not distributed.is_main():
            return directory
        return save_artifact(trained, tokenizer, spec, directory, data.labels, state_dict=state)

    progress_callback = ProgressCallback(
        progress,
        n_examples=data.n_examples,
        n_epochs=spec.n_epochs,
        has_validation=data.eval_dataset is not None,
        accuracy_key=data.accuracy_key,
    )
    checkpoint_callback = CheckpointCallback(spec, progress, progress_callback, stop, export)
    optimizer = getattr(recipe_family, "optimizer", lambda spec, use_cuda: "adamw_torch")
    checkpointing = bool(spec.recipe.gradient_checkpointing)  # resolved above
    args = _trainer_arguments(
        spec, precision, data.eval_dataset is not None, optimizer(spec, precision.use_cuda), checkpointing
    )
    callbacks: list[Any] = [progress_callback, checkpoint_callback]
    args.update(kernel_arguments(spec, model, precision.use_cuda, progress))
    if spec.recipe.compile:
        callbacks.append(CompileWarmupCallback(progress))
    trainer = method.make_trainer(spec, model, tokenizer, data, args, callbacks, progress)
    if sharded:
        progress.message(fsdp.adopt(trainer, precision, cpu_offload=spec.recipe.fsdp_cpu_offload))

    if spec.resume_from and resumed_rows is not None:
        progress_callback.restore(resumed_rows)
        progress.message(f"Resumed from checkpoint at step {resumed_step(Path(spec.resume_from))}")
    trainer.train(resume_from_checkpoint=spec.resume_from)

    if checkpoint_callback.stopped_at is not None and trainer.state.global_step < trainer.state.max_steps:
        return StoppedOutcome(
            step=checkpoint_callback.stopped_at, resume_from=checkpoint_callback.last_resumable
        )

    artifact_dir = export(trainer.model, spec.artifact_dir)
    result_file = spec.result_file
    if distributed.is_main():
        write_result_file(progress_callback.rows, spec.result_file)
        # Resumable state is of no use once the run is complete, and holds optimizer state (2x the
        # trainable weights): only the artifacts stay.
        shutil.rmtree(spec.trainer_dir, ignore_errors=True)
    distributed.finish()
    return TrainingOutcome(
        trained_tokens=data.tokens_per_epoch * spec.n_epochs,
        artifact_dir=artifact_dir,
        artifact_format=artifact_format(spec),
        result_file=result_file,
        labels=data.labels,
    )


def _needed_bytes(spec: TrainingSpec, precision: Precision) -> int:
    per_process = -(-spec.batch_size // distributed.world_size())
    estimated = estimated_bytes(
        spec.base_model_dir,
        spec.recipe,
        task=method_row(spec.method).task,
        precision=precision.name,
        batch_size=per_process,
    )
    return estimated if estimated is not None else int(HEADROOM_FACTOR * weights_bytes(spec.base_model_dir))


def _with_resolved_checkpointing(
    spec: TrainingSpec, precision: Precision, recipe_family: Any, progress: ProgressWriter
) -> TrainingSpec:
    """The spec with gradient_checkpointing a bool: "auto" decided, and off where the recipe can't."""
    requested = spec.recipe.gradient_checkpointing
    use_cuda = precision.use_cuda
    choice = resolve_gradient_checkpointing(
        requested,
        use_cuda=use_cuda,
        needed_bytes=_needed_bytes(spec, precision) if use_cuda else None,
        free_bytes=gpu_free_bytes() if use_cuda else None,
    )
    enabled = choice.enabled
    if requested == "auto":
        progress.message(f"gradient checkpointing {choice.reason}")
    supports_checkpointing = getattr(
        recipe_family, "supports_gradient_checkpointing", lambda recipe_type: True
    )
    if enabled and not supports_checkpointing(spec.recipe.type):
        enabled = False
        progress.message(f"gradient checkpointing is off: {spec.recipe.type} does not work with it", "warn")
    recipe = spec.recipe.model_copy(update={"gradient_checkpointing": enabled})
    return dataclasses.replace(spec, recipe=recipe)


def _trainer_arguments(
    spec: TrainingSpec, precision: Precision, has_validation: bool, optimizer: str, checkpointing: bool
) -> dict[str, Any]:
    """The TrainingArguments every method shares (TRL's configs extend TrainingArguments)."""
    recipe = spec.recipe
    return dict(
        output_dir=str(spec.trainer_dir),
        num_train_epochs=spec.n_epochs,
        # batch_size is the job's, over all ranks together: each takes its share of every step.
        per_device_train_batch_size=-(-spec.batch_size // distributed.world_size()),
        per_device_eval_batch_size=-(-spec.batch_size // distributed.world_size()),
        learning_rate=spec.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler,
        # A float below 1 is read as a fraction of the total steps.
        warmup_steps=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        optim=optimizer,
        seed=spec.seed,
        data_seed=spec.seed,
        # One metrics line per optimizer step, as OpenAI reports them.
        logging_steps=1,
        # The tokens each step trained on, padding left out: the metrics lines' tokens/s.
        include_num_input_tokens_seen="non_padding",
        eval_strategy="epoch" if has_validation else "no",
        # Each epoch end saves a resumable checkpoint; CheckpointCallback adds the ones between.
        save_strategy="epoch",
        save_total_limit=None if spec.worker_removes_checkpoints else 2,
        report_to=[],
        disable_tqdm=True,
        # Decided by checkpointing.py: only where memory needs it.
        # Non-reentrant checkpointing also works when no input of a block requires grad (frozen base).
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        # Similar lengths in a batch pad less, at the price of a different order of examples: opt-in.
        train_sampling_strategy=(
            "group_by_length"
            if recipe.group_by_length and "group_by_length" not in method_row(spec.method).ignores
            else "random"
        ),
        use_cpu=not precision.use_cuda,
        bf16=precision.name == "bf16",
        fp16=precision.name == "fp16",
        **distributed.trainer_arguments(distributed.world_size()),
    )
