"""One rank of the FSDP gradient-parity test:
`python -m tests.support.fsdp_gradients MODEL_DIR OUT.pt [offload]`.

Joins the run's ranks as the trainer does (worker.training.distributed: the supervisor's rendezvous
file and gloo), loads the tiny chat model, shards it exactly as an fsdp job does
(worker.training.fsdp.shard: each decoder layer, then the root), runs forward and backward on its
rank's half of a fixed batch and one AdamW step, and rank 0 saves the whole gradients (gathered from
the shards) and the whole updated weights.

Run in one process (no WORLD_SIZE) it does the same on the whole batch without sharding: the
baseline the test compares with.
"""

from __future__ import annotations

import sys

import torch

from worker.training import distributed, fsdp
from worker.training.precision import Precision

BATCH, LENGTH = 8, 12


def batch(vocab_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab_size, (BATCH, LENGTH), generator=generator)


def load(model_dir: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def main(model_dir: str, out: str, offload: bool) -> int:
    distributed.init_process_group()
    model = load(model_dir)
    tokens = batch(model.config.vocab_size)
    world = distributed.world_size()
    if world > 1:
        fsdp.shard(model, Precision("fp32", use_cuda=False), cpu_offload=offload)
    share = BATCH // world
    rows = tokens[distributed.rank() * share : (distributed.rank() + 1) * share]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(input_ids=rows, labels=rows).loss.backward()
    gradients = {name: _whole(p.grad) for name, p in model.named_parameters()}
    optimizer.step()
    weights = {name: _whole(p.detach()) for name, p in model.named_parameters()}
    if distributed.is_main():
        torch.save({"gradients": gradients, "weights": weights}, out)
    distributed.barrier()
    distributed.finish()
    return 0


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).clone()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], offload=sys.argv[3:] == ["offload"]))
