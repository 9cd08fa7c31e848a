"""What each dashboard page shows, computed from the services and repositories: routes only render it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api import clock, queue
from api.auth.service import Caller
from api.config import Settings
from api.dashboard import repository
from api.db import end_reads
from api.errors import NotFound
from api.fine_tuning import service as jobs_service
from api.fine_tuning.status import QUEUED, VALIDATING_FILES
from api.metrics import repository as metrics_repository
from api.models.store import ModelStore
from api.tables import ApiKey, FineTuningJob
from api.webhooks import service as webhooks
from api.workers.service import WorkerView, list_workers

TRAINER_LOG_TAIL_BYTES = 20_000


@dataclass(frozen=True)
class JobRow:
    job: FineTuningJob
    step: int | None
    total_steps: int | None
    elapsed: int | None
    remaining: int | None

    def as_json(self) -> dict[str, Any]:
        job = self.job
        return {
            "id": job.id,
            "project": job.project.name,
            "status": job.status,
            "model": job.model,
            "method": (job.method or {}).get("type"),
            "suffix": job.suffix,
            "step": self.step,
            "total_steps": self.total_steps,
            "elapsed": self.elapsed,
            "remaining": self.remaining,
            "trained_tokens": job.trained_tokens,
            "fine_tuned_model": job.fine_tuned_model,
            "created_at": job.created_at,
        }


def job_row(session: Session, job: FineTuningJob, now: int) -> JobRow:
    latest = repository.newest_metrics(session, job.pk) or {}
    elapsed = None
    if job.started_at is not None:
        elapsed = (job.finished_at or now) - job.started_at
    remaining = max(0, job.estimated_finish - now) if job.estimated_finish else None
    return JobRow(job, latest.get("step"), latest.get("total_steps"), elapsed, remaining)


def job_rows(session: Session, filters: dict[str, str | None], limit: int = 100) -> list[JobRow]:
    now = clock.now()
    found = repository.jobs(
        session,
        status=filters.get("status"),
        project=filters.get("project"),
        model=filters.get("model"),
        method=filters.get("method"),
        search=filters.get("q"),
        limit=limit,
    )
    return [job_row(session, job, now) for job in found]


def job_or_404(session: Session, job_id: str) -> FineTuningJob:
    job = repository.job(session, job_id)
    if job is None:
        raise NotFound(f"No fine-tuning job found with id {job_id}", param="job_id")
    return job


def job_live(session: Session, settings: Settings, job_id: str) -> dict[str, Any]:
    """The job page's live part: status, progress, the loss curve's points, events, deliveries, log."""
    job = job_or_404(session, job_id)
    series = repository.metrics_events(session, job.pk)
    training = [[m["step"], m["train_loss"]] for m in series if m.get("train_loss") is not None]
    validation = [[m["step"], m["valid_loss"]] for m in series if m.get("valid_loss") is not None]
    deliveries = webhooks.deliveries_of_job(session, job)
    return {
        **job_row(session, job, clock.now()).as_json(),
        "error": job.error,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "training_loss": training,
        "validation_loss": validation,
        "events": [
            {"id": e.id, "created_at": e.created_at, "level": e.level, "message": e.message}
            for e in repository.messages(session, job.pk)
        ],
        "checkpoints": [
            {
                "id": c.id,
                "step": c.step_number,
                "model": c.fine_tuned_model_checkpoint,
                "metrics": c.metrics,
            }
            for c in repository.checkpoints(session, job.pk)
        ],
        "deliveries": [
            {
                "event_id": view.delivery.event_id,
                "type": view.delivery.event_type,
                "url": view.url,
                "state": view.state,
                "attempts": [
                    {"at": a.started_at, "status_code": a.status_code, "error": a.error, "ms": a.duration_ms}
                    for a in view.attempts
                ],
            }
            for view in deliveries
        ],
        "trainer_log": trainer_log_tail(settings, job.id),
    }


def trainer_log_tail(settings: Settings, job_id: str) -> str | None:
    """The end of the trainer's stderr, while the job's work directory is on this machine."""
    path = settings.jobs_path / job_id / "trainer.log"
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - TRAINER_LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError:
        return None


def admin_caller(job: FineTuningJob, key: ApiKey) -> Caller:
    """The signed-in admin acting on a job, through the same services the API's controls use."""
    return Caller(job.project, is_admin=True, sees_all_projects=True, key_id=key.id)


def control(session: Session, settings: Settings, key: ApiKey, job_id: str, action: str) -> FineTuningJob:
    job = job_or_404(session, job_id)
    caller = admin_caller(job, key)
    if action == "cancel":
        return jobs_service.cancel_job(session, caller, job_id)
    if action == "pause":
        return jobs_service.pause_job(session, caller, job_id)
    if action == "resume":
        return jobs_service.resume_job(session, settings, caller, job_id)
    raise NotFound(f"No job control {action!r}", param="action")


def workers(session: Session, settings: Settings) -> list[WorkerView]:
    return list_workers(session, now=clock.now(), lost_after=settings.lease_seconds)


@dataclass(frozen=True)
class QueueRow:
    name: str
    depth: int
    oldest_job: str | None
    waited: int | None


def queues(session: Session) -> list[QueueRow]:
    now = clock.now()
    rows = []
    for name, status in ((queue.VALIDATION_QUEUE, VALIDATING_FILES), (queue.TRAINING_QUEUE, QUEUED)):
        depth, since = metrics_repository.waiting_jobs(session, status)
        oldest = repository.oldest_waiting(session, status)
        rows.append(QueueRow(name, depth, oldest.id if oldest else None, now - since if since else None))
    depth, since = metrics_repository.pending_deliveries(session)
    rows.append(QueueRow(queue.WEBHOOK_QUEUE, depth, None, now - since if since else None))
    return rows


@dataclass(frozen=True)
class ModelRow:
    id: str
    kind: str
    size_bytes: int
    detail: str = ""


def models(session: Session, settings: Settings, store: ModelStore) -> list[ModelRow]:
    from api.fine_tuning import artifacts

    rows = [ModelRow(entry.id, "base", directory_size(entry.path)) for entry in store.list()]
    jobs = list(repository.fine_tuned(session))
    end_reads(session)  # on S3 the sizes are listings of the bucket
    for job in jobs:
        size = artifacts.stored_bytes(settings, artifacts.adapter_dir(settings, job.id))
        rows.append(ModelRow(job.fine_tuned_model or "", "fine-tuned", size, f"{job.model} · {job.id}"))
    return rows


def directory_size(path: Path) -> int:
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@dataclass
class ProjectRow:
    id: str
    name: str
    keys: list[ApiKey] = field(default_factory=list)


def projects_and_keys(session: Session) -> list[ProjectRow]:
    rows = {p.pk: ProjectRow(p.id, p.name) for p in repository.projects(session)}
    for key in repository.keys(session):
        rows[key.project_pk].keys.append(key)
    return list(rows.values())
