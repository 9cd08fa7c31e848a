"""Registering GPU workers as the registry does, for the tests of admission and pools."""

from __future__ import annotations

from typing import Any

from api import clock, queue
from api.db import session_scope
from api.tables import Worker

GIB = 2**30


def register_worker(sessions: Any, worker_id: str, pool: str, gpus: int, gpu_memory_bytes: int) -> None:
    now = clock.now()
    with session_scope(sessions) as session:
        session.add(
            Worker(
                id=worker_id,
                hostname="gpu-host",
                pool=pool,
                queues=queue.worker_queues(pool),
                gpu_count=gpus,
                gpu_memory_bytes=gpu_memory_bytes,
                gpu_names=["Test GPU"] * gpus,
                started_at=now,
                last_heartbeat_at=now,
            )
        )
