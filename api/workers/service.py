"""Reading the registry: each worker with its state and the job it trains.

A worker is `active` while its heartbeat is fresh, `stopped` once it said goodbye, and `lost` when
its heartbeat is older than a lease (the same horizon after which its jobs are given to others).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.fine_tuning.status import RUNNING
from api.tables import FineTuningJob, Worker

ACTIVE = "active"
LOST = "lost"
STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerView:
    worker: Worker
    state: str
    job_id: str | None


def state_of(worker: Worker, *, now: int, lost_after: int) -> str:
    if worker.stopped_at is not None:
        return STOPPED
    return LOST if now - worker.last_heartbeat_at > lost_after else ACTIVE


def list_workers(session: Session, *, now: int, lost_after: int) -> list[WorkerView]:
    """Every registered worker, newest heartbeat first, with the running job it holds a lease on."""
    workers = session.scalars(select(Worker).order_by(Worker.last_heartbeat_at.desc(), Worker.pk)).all()
    running = session.execute(
        select(FineTuningJob.lease_owner, FineTuningJob.id).where(
            FineTuningJob.status == RUNNING, FineTuningJob.lease_owner.is_not(None)
        )
    ).all()
    job_of = {owner: job_id for owner, job_id in running}
    return [
        WorkerView(worker, state_of(worker, now=now, lost_after=lost_after), job_of.get(worker.id))
        for worker in workers
    ]
