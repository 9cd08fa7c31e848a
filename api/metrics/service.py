"""The gauges read from the database at each scrape: one answer, whichever API process is asked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from api import clock, queue
from api.config import Settings
from api.db import session_scope
from api.fine_tuning.status import ALLOWED, QUEUED, VALIDATING_FILES
from api.metrics import repository
from api.workers.service import ACTIVE, LOST, STOPPED, list_workers


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    step: int
    total_steps: int
    train_loss: float | None
    steps_per_second: float | None
    tokens_per_second: float | None
    gpu_memory_bytes: float | None


def progress_of_running_jobs(session: Session) -> list[JobProgress]:
    """Each running job's newest step, with its rate from the two newest steps' times."""
    progress = []
    for job in repository.running_jobs(session):
        newest = repository.newest_metrics(session, job.pk)
        if not newest:
            continue
        (at, data), *older = newest
        rate = None
        if older and at > older[0][0]:
            rate = (data.get("step", 0) - older[0][1].get("step", 0)) / (at - older[0][0])
        progress.append(
            JobProgress(
                job.id,
                int(data.get("step", 0)),
                int(data.get("total_steps", 0)),
                data.get("train_loss"),
                rate,
                # Reported by trainers that count them; absent otherwise, and then not exported.
                data.get("tokens_per_second"),
                data.get("gpu_memory_bytes"),
            )
        )
    return progress


class DatabaseCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        now = clock.now()
        with session_scope(self.sessions, writes=False) as session:
            by_status = repository.jobs_by_status(session)
            waiting = {
                queue.VALIDATION_QUEUE: repository.waiting_jobs(session, VALIDATING_FILES),
                queue.TRAINING_QUEUE: repository.waiting_jobs(session, QUEUED),
                queue.WEBHOOK_QUEUE: repository.pending_deliveries(session),
            }
            workers = list_workers(session, now=now, lost_after=self.settings.lease_seconds)
            progress = progress_of_running_jobs(session)

        jobs = GaugeMetricFamily("tunery_jobs", "Fine-tuning jobs by status.", labels=["status"])
        for status in ALLOWED:
            jobs.add_metric([status], by_status.get(status, 0))
        yield jobs

        depth = GaugeMetricFamily(
            "tunery_queue_depth", "Work waiting in each queue (from the database).", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "tunery_queue_oldest_wait_seconds",
            "How long the oldest waiting item has waited.",
            labels=["queue"],
        )
        for name, (count, since) in waiting.items():
            depth.add_metric([name], count)
            oldest.add_metric([name], max(0, now - since) if since is not None else 0)
        yield depth
        yield oldest

        counts: dict[tuple[str, str], int] = {}
        for view in workers:
            counts[view.worker.pool, view.state] = counts.get((view.worker.pool, view.state), 0) + 1
        for pool in {view.worker.pool for view in workers}:
            for state in (ACTIVE, LOST, STOPPED):
                counts.setdefault((pool, state), 0)
        by_pool = GaugeMetricFamily(
            "tunery_workers", "Registered workers by pool and state.", labels=["pool", "state"]
        )
        for (pool, state), count in sorted(counts.items()):
            by_pool.add_metric([pool, state], count)
        yield by_pool

        labels = ["job"]
        step = GaugeMetricFamily("tunery_job_step", "A running job's newest optimizer step.", labels=labels)
        total = GaugeMetricFamily("tunery_job_total_steps", "A running job's steps in all.", labels=labels)
        loss = GaugeMetricFamily(
            "tunery_job_train_loss", "A running job's newest training loss.", labels=labels
        )
        steps_rate = GaugeMetricFamily(
            "tunery_job_steps_per_second", "A running job's step rate.", labels=labels
        )
        tokens_rate = GaugeMetricFamily(
            "tunery_job_tokens_per_second", "A running job's training tokens per second.", labels=labels
        )
        memory = GaugeMetricFamily(
            "tunery_job_gpu_memory_bytes", "GPU memory a running job uses.", labels=labels
        )
        for job in progress:
            step.add_metric([job.job_id], job.step)
            total.add_metric([job.job_id], job.total_steps)
            for family, value in (
                (loss, job.train_loss),
                (steps_rate, job.steps_per_second),
                (tokens_rate, job.tokens_per_second),
                (memory, job.gpu_memory_bytes),
            ):
                if value is not None:
                    family.add_metric([job.job_id], value)
        yield from (step, total, loss, steps_rate, tokens_rate, memory)
