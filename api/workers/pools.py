"""GPU pools as the registry shows them now: the live workers of each pool and the GPUs they offer.

A pool exists while one of its workers heartbeats. Only workers with GPUs make a pool that jobs are
placed on: with none (the embedded default, CPU workers), jobs train on the default pool as they
always did, and nothing is refused for its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.workers.service import ACTIVE, list_workers
from catalog.sizes import format_bytes


@dataclass(frozen=True)
class Machine:
    """One live worker: GPUs it trains on, each with this much memory."""

    gpu_count: int
    gpu_memory_bytes: int


@dataclass(frozen=True)
class Pool:
    name: str
    machines: tuple[Machine, ...]

    def fitting(self, num_gpus: int, bytes_per_gpu: int) -> int:
        """How many of its machines can each run `num_gpus` processes of `bytes_per_gpu`."""
        return sum(m.gpu_count >= num_gpus and m.gpu_memory_bytes >= bytes_per_gpu for m in self.machines)

    def fits(self, num_gpus: int, num_nodes: int, bytes_per_gpu: int) -> bool:
        return self.fitting(num_gpus, bytes_per_gpu) >= num_nodes

    @property
    def largest(self) -> Machine:
        return max(self.machines, key=lambda m: (m.gpu_count * m.gpu_memory_bytes, m.gpu_memory_bytes))

    def describe(self) -> str:
        largest = self.largest
        return f"{largest.gpu_count} x {format_bytes(largest.gpu_memory_bytes)}"


def gpu_pools(session: Session, *, now: int, lost_after: int) -> list[Pool]:
    """The pools whose live workers have GPUs of a known size, by name."""
    machines: dict[str, list[Machine]] = {}
    for view in list_workers(session, now=now, lost_after=lost_after):
        worker = view.worker
        if view.state != ACTIVE or worker.gpu_count < 1 or not worker.gpu_memory_bytes:
            continue
        machines.setdefault(worker.pool, []).append(Machine(worker.gpu_count, worker.gpu_memory_bytes))
    return [Pool(name, tuple(found)) for name, found in sorted(machines.items())]
