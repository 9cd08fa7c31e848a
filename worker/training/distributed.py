"""The trainer's side of a multi-process run (recipe `distributed: "ddp"` or `"fsdp"`): one process a
GPU, ranks that agree at each step.

The worker's supervisor starts the ranks (worker/supervisor.py) with RANK, LOCAL_RANK, WORLD_SIZE and
TUNERY_RENDEZVOUS, a file that no other run uses: the ranks meet through it (torch's FileStore), so
no rendezvous server listens on any address, and gloo's own connections stay on loopback
(GLOO_SOCKET_IFNAME=lo). Ranks on several machines (recipe num_nodes > 1, worker/cluster/) get
MASTER_ADDR and MASTER_PORT instead and meet at rank 0's TCP store. The process group is made here
before the Trainer starts; accelerate finds it and wraps the model in DistributedDataParallel, which
averages the gradients of the ranks (ddp), or the run shards the model itself over it (fsdp:
worker/training/fsdp.py).

Rank 0 alone speaks for the run: its stdout is the protocol stream (the others' goes nowhere) and it
alone writes artifacts and result files. Decisions taken from the clock or a signal (a timed
checkpoint, a pause) are agreed at each step, so that every rank saves and stops at the same step.
"""

from __future__ import annotations

import os
from typing import Any

RENDEZVOUS_ENV = "TUNERY_RENDEZVOUS"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init_process_group(alone_too: bool = False) -> None:
    """Join the run's other ranks; nothing for a one-process run, unless `alone_too` (fsdp on one GPU,
    for its CPU offload, still needs a process group: one of its own, met through a file of its own)."""
    if world_size() <= 1 and not alone_too:
        return
    import tempfile

    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    rendezvous = os.environ.get(RENDEZVOUS_ENV)
    if rendezvous is None and world_size() > 1 and "MASTER_ADDR" in os.environ:
        # Ranks on several machines (worker/cluster/rank.py): no file they all see, so they meet at
        # rank 0's TCP store, on the address and port the cluster gave it.
        init_method = "env://"
    else:
        init_method = "file://" + (rendezvous or os.path.join(tempfile.mkdtemp(), "rendezvous"))
    dist.init_process_group(
        "nccl" if use_cuda else "gloo", init_method=init_method, rank=rank(), world_size=world_size()
    )


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank when it is true on any one (one small all-reduce)."""
    if not active():
        return flags
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
    values = torch.tensor([int(flag) for flag in flags], dtype=torch.int32, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(value) for value in values.tolist())


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def finish() -> None:
    if active():
        import torch.distributed as dist

        dist.destroy_process_group()


def trainer_arguments(processes: int) -> dict[str, Any]:
    """What the TrainingArguments add for a run over `processes` ranks."""
    if processes <= 1:
        return {}
    # Every rank trains every parameter it holds; looking for unused ones costs a graph walk a step.
    return {"ddp_find_unused_parameters": False}
