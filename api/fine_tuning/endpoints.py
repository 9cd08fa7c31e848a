"""/v1/fine_tuning/jobs: thin routes over the fine-tuning service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from api import queue
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import NotFound
from api.fine_tuning import artifacts, service
from api.fine_tuning.schemas import FineTuningJobEventObject, FineTuningJobObject, JobCreate
from api.models.endpoints import ModelStoreDep
from api.pagination import Page

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"])


@router.post("", response_model=FineTuningJobObject)
def create_job(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, store: ModelStoreDep, body: JobCreate
) -> FineTuningJobObject:
    job = service.create_job(session, store, caller.project, body)
    # The message goes out only once the job is committed: a worker must find the row it names.
    session.commit()
    queue.enqueue(settings, queue.VALIDATE_JOB, job.id)
    return FineTuningJobObject.of(job)


@router.get("", response_model=Page[FineTuningJobObject])
def list_jobs(
    session: SessionDep,
    caller: CallerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[FineTuningJobObject]:
    rows, has_more = service.list_jobs(session, caller.project, after=after, limit=limit)
    return Page.of([FineTuningJobObject.of(job) for job in rows], has_more)


@router.get("/{job_id}", response_model=FineTuningJobObject)
def retrieve_job(session: SessionDep, caller: CallerDep, job_id: str) -> FineTuningJobObject:
    return FineTuningJobObject.of(service.get_job(session, caller.project, job_id))


@router.get("/{job_id}/events", response_model=Page[FineTuningJobEventObject])
def list_job_events(
    session: SessionDep,
    caller: CallerDep,
    job_id: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Page[FineTuningJobEventObject]:
    rows, has_more = service.list_events(session, caller.project, job_id, after=after, limit=limit)
    return Page.of([FineTuningJobEventObject.of(event) for event in rows], has_more)


@router.get("/{job_id}/adapter", response_class=FileResponse)
def download_adapter(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, job_id: str
) -> FileResponse:
    """Tunery's extension: the trained adapter directory as a .tar.gz (PEFT format)."""
    job = service.get_job(session, caller.project, job_id)
    archive = artifacts.adapter_archive(settings, job.id)
    if job.fine_tuned_model is None or not archive.is_file():
        raise NotFound(f"Fine-tuning job {job_id} has no adapter (status: {job.status}).", param="job_id")
    return FileResponse(archive, media_type="application/gzip", filename=f"{job.id}-adapter.tar.gz")
