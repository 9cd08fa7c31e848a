"""/v1/fine_tuning/jobs: thin routes over the fine-tuning service."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.checkpoints import service as checkpoints
from api.db import end_reads
from api.deps import CallerDep, JobCreationLimit, SessionDep, SettingsDep
from api.errors import InvalidRequest, NotFound
from api.fine_tuning import artifacts, service, tar_download
from api.fine_tuning.schemas import FineTuningJobEventObject, FineTuningJobObject, JobCreate
from api.models.endpoints import ModelStoreDep
from api.one_hop import OneHopRoute
from api.pagination import Page

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], route_class=OneHopRoute)

# The SDK sends metadata={"k": "v"} as the query parameter metadata[k]=v.
METADATA_PARAM = re.compile(r"^metadata\[(.{1,64})\]$")


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description="Retrying a create with the same key returns the job the first request made.",
    ),
]


@router.post("", response_model=FineTuningJobObject, dependencies=[JobCreationLimit])
def create_job(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    store: ModelStoreDep,
    body: JobCreate,
    idempotency_key: IdempotencyKey = None,
) -> FineTuningJobObject:
    job = service.create_job_once(session, settings, store, caller, body, idempotency_key)
    return FineTuningJobObject.of(job)


@router.get("", response_model=Page[FineTuningJobObject])
def list_jobs(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[FineTuningJobObject]:
    metadata = _metadata_filters(request)
    rows, has_more = service.list_jobs(session, caller, after=after, limit=limit, metadata=metadata)
    return Page.of([FineTuningJobObject.of(job) for job in rows], has_more)


@router.get("/{job_id}", response_model=FineTuningJobObject)
def retrieve_job(session: SessionDep, caller: CallerDep, job_id: str) -> FineTuningJobObject:
    return FineTuningJobObject.of(service.get_job(session, caller, job_id))


@router.post("/{job_id}/cancel", response_model=FineTuningJobObject)
def cancel_job(session: SessionDep, caller: CallerDep, job_id: str) -> FineTuningJobObject:
    return FineTuningJobObject.of(service.cancel_job(session, caller, job_id))


@router.post("/{job_id}/pause", response_model=FineTuningJobObject)
def pause_job(session: SessionDep, caller: CallerDep, job_id: str) -> FineTuningJobObject:
    return FineTuningJobObject.of(service.pause_job(session, caller, job_id))


@router.post("/{job_id}/resume", response_model=FineTuningJobObject)
def resume_job(
    session: SessionDep, caller: CallerDep, settings: SettingsDep, job_id: str
) -> FineTuningJobObject:
    return FineTuningJobObject.of(service.resume_job(session, settings, caller, job_id))


@router.get("/{job_id}/events", response_model=Page[FineTuningJobEventObject])
def list_job_events(
    session: SessionDep,
    caller: CallerDep,
    job_id: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Page[FineTuningJobEventObject]:
    rows, has_more = service.list_events(session, caller, job_id, after=after, limit=limit)
    return Page.of([FineTuningJobEventObject.of(event) for event in rows], has_more)


@router.get("/{job_id}/adapter", response_class=StreamingResponse, responses=tar_download.DOWNLOAD_RESPONSES)
def download_adapter(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    job_id: str,
    checkpoint: Annotated[str | None, Query(description="A checkpoint id (ftckpt_...) of this job.")] = None,
) -> Response:
    """Tunery's extension: the trained artifact (or a checkpoint's) as a tar, unpacking to adapter/."""
    job = service.get_job(session, caller, job_id)
    if checkpoint is not None:
        row = checkpoints.checkpoint_of_job(session, job, checkpoint)
        if row is None:
            raise NotFound(f"No checkpoint {checkpoint} in fine-tuning job {job_id}", param="checkpoint")
        directory = artifacts.checkpoint_dir(settings, job.id, row.step_number)
        name = f"{job.id}-step-{row.step_number}-adapter.tar"
    else:
        directory = artifacts.adapter_dir(settings, job.id)
        name = f"{job.id}-adapter.tar"
    # The row decides: a deleted model's files may outlive the delete's commit for a moment.
    no_model = checkpoint is None and (job.fine_tuned_model is None or job.model_deleted_at is not None)
    missing = NotFound(
        f"Fine-tuning job {job_id} has no such adapter (status: {job.status}).", param="job_id"
    )
    if no_model:
        raise missing
    end_reads(session)
    response = artifacts.download(request, settings, directory, name)
    if response is None:
        raise missing
    return response


def _metadata_filters(request: Request) -> dict[str, str]:
    filters = {}
    for name, value in request.query_params.multi_items():
        match = METADATA_PARAM.match(name)
        if match:
            filters[match.group(1)] = value
        elif name.startswith("metadata"):
            raise InvalidRequest(f"Filter by metadata as metadata[key]=value, not {name!r}.", param=name)
    return filters
