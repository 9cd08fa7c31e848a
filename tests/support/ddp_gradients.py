"""One rank of the gradient-parity test: `python -m tests.support.ddp_gradients OUT.pt`.

Joins the run's ranks as the trainer does (worker.training.distributed, the supervisor's rendezvous
file and gloo), wraps a small seeded model in DistributedDataParallel, runs forward and backward on
its rank's half of a fixed batch, and rank 0 saves the gradients DDP left on every parameter.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from worker.training import distributed

BATCH = 8


def model_and_batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    inputs = torch.randn(BATCH, 6)
    targets = torch.randint(0, 3, (BATCH,))
    return model, inputs, targets


def main(out: str) -> int:
    distributed.init_process_group()
    model, inputs, targets = model_and_batch()
    wrapped = nn.parallel.DistributedDataParallel(model)
    share = BATCH // distributed.world_size()
    rows = slice(distributed.rank() * share, (distributed.rank() + 1) * share)
    nn.functional.cross_entropy(wrapped(inputs[rows]), targets[rows]).backward()
    if distributed.is_main():
        torch.save({name: p.grad for name, p in model.named_parameters()}, out)
    distributed.barrier()
    distributed.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
