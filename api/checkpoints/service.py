"""Checkpoints of a job, and sharing a checkpoint model with other projects.

Only the project that owns a checkpoint (or an admin key) manages who else may use it; a project
the checkpoint is shared with can list, retrieve and download it like its own model.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api import clock
from api.auth import service as projects
from api.auth.service import Caller
from api.checkpoints import repository
from api.errors import InvalidRequest, NotFound
from api.fine_tuning.service import checkpoint_model_name, get_job
from api.ids import new_id
from api.tables import CheckpointPermission, FineTuningCheckpoint, FineTuningJob


def record(session: Session, job: FineTuningJob, step: int, metrics: dict[str, Any]) -> FineTuningCheckpoint:
    """The worker's call when the trainer saved an epoch's model; a repeat for a step is a no-op."""
    existing = repository.by_step(session, job.pk, step)
    if existing is not None:
        return existing
    row = FineTuningCheckpoint(
        id=new_id("ftckpt_"),
        job_pk=job.pk,
        project_pk=job.project_pk,
        step_number=step,
        metrics=metrics,
        fine_tuned_model_checkpoint=checkpoint_model_name(job, step),
        created_at=clock.now(),
    )
    repository.add(session, row)
    return row


def list_checkpoints(
    session: Session, caller: Caller, job_id: str, *, after: str | None, limit: int
) -> tuple[list[FineTuningCheckpoint], bool]:
    job = get_job(session, caller, job_id)
    cursor = None
    if after:
        cursor = repository.get_in_job(session, job.pk, after)
        if cursor is None:
            raise NotFound(f"No checkpoint {after} in fine-tuning job {job_id}", param="after")
    rows = repository.page(session, job.pk, after=cursor, limit=limit)
    return rows[:limit], len(rows) > limit


def usable_checkpoints(session: Session, caller: Caller) -> list[FineTuningCheckpoint]:
    """Checkpoint models the caller may use: its own and those shared with its project."""
    return repository.usable(session, caller.scope)


def find_usable_checkpoint(session: Session, caller: Caller, name: str) -> FineTuningCheckpoint | None:
    return repository.by_model_name(session, caller.scope, name)


def checkpoint_of_job(
    session: Session, job: FineTuningJob, checkpoint_id: str
) -> FineTuningCheckpoint | None:
    return repository.get_in_job(session, job.pk, checkpoint_id)


def usable_checkpoint(session: Session, caller: Caller, name: str) -> FineTuningCheckpoint:
    row = repository.by_model_name(session, caller.scope, name)
    if row is None:
        raise NotFound(f"No fine-tuned model checkpoint {name!r}.", param="checkpoint")
    return row


def owned_checkpoint(session: Session, caller: Caller, name: str) -> FineTuningCheckpoint:
    row = repository.by_model_name(session, caller.scope, name)
    if row is None or (caller.scope is not None and row.project_pk != caller.scope):
        # A checkpoint merely shared with the caller is as invisible here as a stranger's.
        raise NotFound(
            f"No fine-tuned model checkpoint {name!r} in this project.", param="fine_tuned_model_checkpoint"
        )
    return row


def share(session: Session, caller: Caller, name: str, project_ids: list[str]) -> list[CheckpointPermission]:
    checkpoint = owned_checkpoint(session, caller, name)
    found = {project.id: project for project in projects.projects_by_ids(session, project_ids)}
    for project_id in project_ids:
        if project_id not in found:
            raise InvalidRequest(f"No project {project_id!r}.", param="project_ids")
        if found[project_id].pk == checkpoint.project_pk:
            raise InvalidRequest(
                f"Project {project_id!r} owns this checkpoint; it needs no permission.", param="project_ids"
            )
    granted = []
    for project_id in dict.fromkeys(project_ids):  # in order, each once
        project = found[project_id]
        row = repository.permission_for(session, checkpoint.pk, project.pk)
        if row is None:
            row = CheckpointPermission(
                id=new_id("cp_"), checkpoint_pk=checkpoint.pk, project_pk=project.pk, created_at=clock.now()
            )
            repository.add(session, row)
            session.refresh(row)
        granted.append(row)
    return granted


def list_permissions(
    session: Session,
    caller: Caller,
    name: str,
    *,
    after: str | None,
    limit: int,
    order: str,
    project_id: str | None,
) -> tuple[list[CheckpointPermission], bool]:
    checkpoint = owned_checkpoint(session, caller, name)
    cursor = None
    if after:
        cursor = repository.permission(session, checkpoint.pk, after)
        if cursor is None:
            raise NotFound(f"No permission {after} on this checkpoint.", param="after")
    project_pk = None
    if project_id:
        project = projects.project_by_id(session, project_id)
        if project is None:
            return [], False
        project_pk = project.pk
    rows = repository.permissions_page(
        session,
        checkpoint.pk,
        after=cursor,
        limit=limit,
        newest_first=order == "descending",
        project_pk=project_pk,
    )
    return rows[:limit], len(rows) > limit


def revoke(session: Session, caller: Caller, name: str, permission_id: str) -> None:
    checkpoint = owned_checkpoint(session, caller, name)
    row = repository.permission(session, checkpoint.pk, permission_id)
    if row is None:
        raise NotFound(f"No permission {permission_id} on this checkpoint.", param="permission_id")
    repository.delete(session, row)
