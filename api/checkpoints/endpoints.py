"""Checkpoint routes: a job's checkpoints, and permissions on a checkpoint model.

Checkpoint model names contain ':' and, when the base model id has an org, '/' (sent as %2F and
decoded before routing): the routes take the name as a path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.checkpoints import service
from api.checkpoints.schemas import (
    CheckpointPermissionDeleted,
    CheckpointPermissionObject,
    FineTuningJobCheckpointObject,
    PermissionCreate,
)
from api.db import end_reads
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import NotFound
from api.fine_tuning import artifacts, tar_download
from api.one_hop import OneHopRoute
from api.pagination import Page

router = APIRouter(tags=["checkpoints"], route_class=OneHopRoute)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints", response_model=Page[FineTuningJobCheckpointObject])
def list_job_checkpoints(
    session: SessionDep,
    caller: CallerDep,
    job_id: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Page[FineTuningJobCheckpointObject]:
    rows, has_more = service.list_checkpoints(session, caller, job_id, after=after, limit=limit)
    return Page.of([FineTuningJobCheckpointObject.of(row) for row in rows], has_more)


PERMISSIONS = "/v1/fine_tuning/checkpoints/{checkpoint:path}/permissions"


@router.post(PERMISSIONS, response_model=Page[CheckpointPermissionObject])
def create_checkpoint_permissions(
    session: SessionDep, caller: CallerDep, checkpoint: str, body: PermissionCreate
) -> Page[CheckpointPermissionObject]:
    rows = service.share(session, caller, checkpoint, body.project_ids)
    return Page.of([CheckpointPermissionObject.of(row) for row in rows], has_more=False)


@router.get(PERMISSIONS, response_model=Page[CheckpointPermissionObject])
def list_checkpoint_permissions(
    session: SessionDep,
    caller: CallerDep,
    checkpoint: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    order: Literal["ascending", "descending"] = "descending",
    project_id: str | None = None,
) -> Page[CheckpointPermissionObject]:
    rows, has_more = service.list_permissions(
        session, caller, checkpoint, after=after, limit=limit, order=order, project_id=project_id
    )
    return Page.of([CheckpointPermissionObject.of(row) for row in rows], has_more)


@router.delete(PERMISSIONS + "/{permission_id}", response_model=CheckpointPermissionDeleted)
def delete_checkpoint_permission(
    session: SessionDep, caller: CallerDep, checkpoint: str, permission_id: str
) -> CheckpointPermissionDeleted:
    service.revoke(session, caller, checkpoint, permission_id)
    return CheckpointPermissionDeleted(id=permission_id, deleted=True)


@router.get(
    "/v1/fine_tuning/checkpoints/{checkpoint:path}/adapter",
    response_class=StreamingResponse,
    responses=tar_download.DOWNLOAD_RESPONSES,
)
def download_checkpoint_adapter(
    request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep, checkpoint: str
) -> Response:
    """Tunery's extension: a checkpoint's artifact (a tar), for its project and those it is shared with."""
    row = service.usable_checkpoint(session, caller, checkpoint)
    directory = artifacts.checkpoint_dir(settings, row.job.id, row.step_number)
    name = f"{row.job.id}-step-{row.step_number}-adapter.tar"
    end_reads(session)
    response = artifacts.download(request, settings, directory, name)
    if response is None:
        raise NotFound(f"The adapter of {checkpoint} is no longer stored.", param="checkpoint")
    return response
