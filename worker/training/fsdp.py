"""Fully sharded data parallel runs (recipe `distributed: "fsdp"`): FSDP2's `fully_shard`, called here.

Each rank holds 1/N of every parameter, gradient and optimizer state. `shard` wraps every transformer
block (the classes the model names in `_no_split_modules`, else the layers of its longest ModuleList
of one class) and then the root, which keeps what lies outside the blocks (embeddings, final norm,
head, a classifier's head, prompt embeddings). A block's parameters are gathered just before its
forward and freed after it, and gathered again for its backward; gradients are reduce-scattered
(averaged over the ranks) as soon as a block's backward is done.

Mixed precision sets the parameter and reduce dtypes apart: on a GPU in bf16 (fp16) the gathered
parameters compute in bf16 while gradients are reduced in fp32, and the sharded weights stay as the
recipe loaded them (fp32 for the recipes that train base weights); on CPU all of it is fp32.
`fsdp_cpu_offload` keeps the shards, their gradients and the optimizer state in CPU memory
(CPUOffloadPolicy), copying each block's shard to the GPU for its turn.

We call `fully_shard` ourselves, with a device mesh of the run's ranks (CPU + gloo here, CUDA + nccl
on GPUs), because accelerate's FSDP plugin is silently dropped on a multi-CPU run. The HF Trainer then
gets an already-sharded model, and `adopt` tells it what it can't know: accelerate must not wrap the
model in DistributedDataParallel (it would on a multi-CPU run, and refuses DTensor models on GPUs),
and a checkpoint is a collective (see `full_state` and the checkpoint methods below).

Checkpoints are gathered, not sharded: every rank takes part in gathering the full state
(`torch.distributed.checkpoint.state_dict` with full_state_dict and cpu_offload), and rank 0 alone
writes it. A resumable checkpoint holds the trainable weights (model_state.pt) and the optimizer
state keyed by parameter name (optimizer.pt); resuming reads them on rank 0 and sends each rank its
shards, so a checkpoint does not depend on the number of ranks. The epoch-end checkpoints and the
final artifact are written by `save_pretrained` from the gathered state: they load like a
one-process artifact.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from worker.training import distributed
from worker.training.base_model import COUNTS_ATTRIBUTE, count_parameters
from worker.training.precision import Precision

# In a resumable checkpoint of an fsdp run: the optimizer state, keyed by parameter name (the
# Trainer's optimizer.pt keys by parameter index, which a sharded optimizer does not have).
OPTIMIZER_NAME = "optimizer.pt"
SCHEDULER_NAME = "scheduler.pt"
MODEL_NAME = "model_state.pt"


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks (decoder layers): what each `fully_shard` unit holds."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    blocks = [module for module in model.modules() if type(module).__name__ in names]
    if blocks:
        return blocks
    # No declared block class: the longest list of modules of one class (the layers of a transformer).
    lists: list[list[nn.Module]] = [
        list(module)
        for module in model.modules()
        if isinstance(module, nn.ModuleList) and len({type(child) for child in module}) == 1
    ]
    return max(lists, key=len) if lists else []


def mixed_precision(precision: Precision, quant_storage: torch.dtype | None = None) -> Any:
    """Parameters gathered in the run's compute dtype, gradients reduced in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if not precision.use_cuda or precision.name == "fp32":
        return MixedPrecisionPolicy(param_dtype=None, reduce_dtype=torch.float32)
    # 4-bit weights stored in a float dtype are packed bytes, not values: casting them would destroy
    # them, so a quantized model gathers its parameters in that storage dtype (the compute dtype).
    return MixedPrecisionPolicy(param_dtype=quant_storage or precision.dtype, reduce_dtype=torch.float32)


def shard(model: Any, precision: Precision, *, cpu_offload: bool) -> str:
    """`fully_shard` each transformer block and then the root, over all ranks of the run, in place;
    what was sharded and how, in words (the run's event)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    device = "cuda" if precision.use_cuda else "cpu"
    mesh = init_device_mesh(device, (distributed.world_size(),))
    quant_storage = _quant_storage(model)
    setattr(model, COUNTS_ATTRIBUTE, count_parameters(model))
    mp_policy = mixed_precision(precision, quant_storage)
    policy: dict[str, Any] = {
        "mesh": mesh,
        "mp_policy": mp_policy,
        # Pinned host memory copies to a GPU faster; there is none to pin for on a CPU-only run.
        "offload_policy": CPUOffloadPolicy(pin_memory=precision.use_cuda) if cpu_offload else OffloadPolicy(),
    }
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(f"fsdp found no transformer blocks to shard in {type(model).__name__}")
    # Named before sharding: fully_shard swaps each module's class for an FSDP subclass of it.
    kinds = sorted({type(block).__name__ for block in blocks})
    for block in blocks:
        fully_shard(block, **policy)
    # The root's own parameters are gathered for the whole step (it wraps the forward of all blocks),
    # so it need not free and re-gather them between forward and backward.
    fully_shard(model, reshard_after_forward=False, **policy)
    gathered = mp_policy.param_dtype or "their own dtype"
    return (
        f"fsdp: {len(blocks)} {'/'.join(kinds)} blocks and the root sharded over {mesh.size()} ranks "
        f"({device}); parameters gathered in {gathered}, gradients reduced in {mp_policy.reduce_dtype}"
        + (f"; 4-bit weights stored as {quant_storage}" if quant_storage else "")
        + ("; shards and optimizer state offloaded to CPU memory" if cpu_offload else "")
    )


def leave_placement_to_fsdp(model: Any) -> None:
    """Keep the Trainer from moving the whole model to the GPU: `shard` places each rank's shards."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(inner, "hf_device_map", None) is None:
        # The Trainer moves no model that has a device map (a quantized one has it already).
        inner.hf_device_map = {"": "cpu"}


def _quant_storage(model: nn.Module) -> torch.dtype | None:
    for parameter in model.parameters():
        if type(parameter).__name__ == "Params4bit":
            return parameter.dtype
    return None


def _options(**overrides: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **overrides)


def full_state(model: nn.Module, *, trainable_only: bool) -> dict[str, Any]:
    """The whole model's state dict on rank 0 (CPU tensors), empty on the others. Every rank must call
    it: each sends its shards. An adapter's artifact needs only what trained (`trainable_only`): the
    frozen base stays where it is, instead of crossing the wire to rank 0."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(ignore_frozen_params=trainable_only))


def save_training_state(model: nn.Module, optimizer: Any, scheduler: Any, directory: str) -> None:
    """Gather the trainable weights and the optimizer state to rank 0, which writes them."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    weights = full_state(model, trainable_only=True)
    optimizer_state = get_optimizer_state_dict(model, _unwrapped(optimizer), options=_options())
    if distributed.is_main():
        os.makedirs(directory, exist_ok=True)
        torch.save(weights, os.path.join(directory, MODEL_NAME))
        torch.save(optimizer_state, os.path.join(directory, OPTIMIZER_NAME))
        torch.save(scheduler.state_dict(), os.path.join(directory, SCHEDULER_NAME))


def load_training_state(model: nn.Module, optimizer: Any, scheduler: Any, directory: str) -> None:
    """Rank 0 reads what `save_training_state` wrote; each rank receives its shards of it."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    main = distributed.is_main()
    weights = torch.load(os.path.join(directory, MODEL_NAME), weights_only=True) if main else {}
    set_model_state_dict(model, weights, options=_options(broadcast_from_rank0=True, strict=False))
    optimizer_state = torch.load(os.path.join(directory, OPTIMIZER_NAME), weights_only=True) if main else {}
    options = _options(broadcast_from_rank0=True, strict=False)
    set_optimizer_state_dict(model, _unwrapped(optimizer), optimizer_state, options=options)
    # The schedule is a few numbers that every rank computes alike: each reads it for itself.
    scheduler.load_state_dict(torch.load(os.path.join(directory, SCHEDULER_NAME), weights_only=True))


def _unwrapped(optimizer: Any) -> Any:
    # accelerate's AcceleratedOptimizer holds the torch optimizer whose state is sharded.
    return getattr(optimizer, "optimizer", optimizer)


class _ShardedTrainer:
    """Mixed in before a run's Trainer class (`adopt`): checkpoints of a sharded model."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # The resumable checkpoint's weights go with the optimizer state (_save_optimizer_and_scheduler):
        # the Trainer's own save would read shards on rank 0 alone, and wait forever for the others.
        if not _internal_call:
            raise RuntimeError("a sharded model is saved through worker.training.fsdp.full_state")

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        save_training_state(self.model, self.optimizer, self.lr_scheduler, output_dir)  # type: ignore[attr-defined]

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        # Called before the optimizer exists: the weights load with it, in _load_optimizer_and_scheduler.
        return None

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None:
            load_training_state(self.model, self.optimizer, self.lr_scheduler, checkpoint)  # type: ignore[attr-defined]


def adopt(trainer: Any, precision: Precision, *, cpu_offload: bool) -> str:
    """Shard the model of `trainer` (any HF Trainer, built on a model that `leave_placement_to_fsdp`
    saw) and make the Trainer train it as it is; what was sharded, in words.

    After the Trainer is built, because the trainers change the model as they are built (TRL's turns a
    quantized model's adapter to bf16, DPO's adds a reference adapter), and sharding must see the
    model as it will train. Before training: the optimizer and activation checkpointing come then.
    """
    description = shard(trainer.model, precision, cpu_offload=cpu_offload)
    prepare_model = trainer.accelerator.prepare_model

    def prepare_without_wrapping(model: Any, *args: Any, **kwargs: Any) -> Any:
        # evaluation_mode: autocast and nothing else; accelerate would wrap it in DDP otherwise.
        kwargs["evaluation_mode"] = True
        return prepare_model(model, *args, **kwargs)

    trainer.accelerator.prepare_model = prepare_without_wrapping
    trainer.__class__ = type(f"Sharded{type(trainer).__name__}", (_ShardedTrainer, type(trainer)), {})
    return description
