"""A worker registers what it has when it starts, heartbeats while it lives, and signs off when it stops.

The row is what operators (and the scheduler that places jobs on pools) read; a job's own lease
stays the truth about who trains it. The heartbeat runs on its own thread, so a worker busy
training a job still shows as alive.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

from sqlalchemy import select, update

from api import clock, queue
from api.db import session_scope
from api.tables import Worker
from worker.runtime import Runtime

log = logging.getLogger("tunery.worker.registry")

DEFAULT_POOL = queue.DEFAULT_POOL


@dataclass(frozen=True)
class Capacity:
    """What a worker offers: its pool and GPUs, as flags said or as CUDA reports them."""

    pool: str = DEFAULT_POOL
    gpu_count: int = 0
    gpu_memory_bytes: int | None = None
    gpu_names: list[str] = field(default_factory=list)


def detect_capacity(
    pool: str = DEFAULT_POOL, gpus: int | None = None, gpu_memory_bytes: int | None = None
) -> Capacity:
    """Flags win; what they leave out is read from CUDA (none on a CPU machine)."""
    import torch  # the worker has torch; the API, which only reads rows, does not need it

    names: list[str] = []
    memories: list[int] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            names.append(props.name)
            memories.append(int(props.total_memory))
    count = len(names) if gpus is None else gpus
    memory = gpu_memory_bytes if gpu_memory_bytes is not None else (min(memories) if memories else None)
    return Capacity(pool=pool, gpu_count=count, gpu_memory_bytes=memory, gpu_names=names[:count])


def register(rt: Runtime, capacity: Capacity, queues: list[str]) -> None:
    now = clock.now()
    with session_scope(rt.sessions) as session:
        row = session.scalars(select(Worker).where(Worker.id == rt.worker_id)).one_or_none()
        if row is None:
            row = Worker(id=rt.worker_id, started_at=now)
            session.add(row)
        row.hostname = socket.gethostname()
        row.pool = capacity.pool
        row.queues = queues
        row.gpu_count = capacity.gpu_count
        row.gpu_memory_bytes = capacity.gpu_memory_bytes
        row.gpu_names = capacity.gpu_names
        row.last_heartbeat_at = now
        row.stopped_at = None


def heartbeat(rt: Runtime) -> bool:
    """True when the row was there to touch (a worker whose row was swept away registers again)."""
    with session_scope(rt.sessions) as session:
        touched = session.execute(
            update(Worker)
            .where(Worker.id == rt.worker_id)
            .values(last_heartbeat_at=clock.now(), stopped_at=None)
        )
        return bool(touched.rowcount)  # type: ignore[attr-defined]


def sign_off(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        session.execute(update(Worker).where(Worker.id == rt.worker_id).values(stopped_at=clock.now()))


def start_heartbeat(
    rt: Runtime, capacity: Capacity, queues: list[str], stop: threading.Event
) -> threading.Thread:
    """Register now, then heartbeat every heartbeat_seconds until `stop` is set (a daemon thread)."""
    register(rt, capacity, queues)

    def loop() -> None:
        while not stop.wait(rt.settings.heartbeat_seconds):
            try:
                if not heartbeat(rt):
                    register(rt, capacity, queues)
            except Exception:
                # A database that is briefly away must not kill the worker; the next beat retries.
                log.exception("worker heartbeat failed; trying again next time")

    thread = threading.Thread(target=loop, name="tunery-worker-heartbeat", daemon=True)
    thread.start()
    return thread
