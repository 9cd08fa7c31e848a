"""Queries on checkpoints and checkpoint permissions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session

from api.tables import CheckpointPermission, FineTuningCheckpoint


def add(session: Session, row: FineTuningCheckpoint | CheckpointPermission) -> None:
    session.add(row)
    session.flush()


def by_step(session: Session, job_pk: int, step: int) -> FineTuningCheckpoint | None:
    return session.scalar(
        select(FineTuningCheckpoint).where(
            FineTuningCheckpoint.job_pk == job_pk, FineTuningCheckpoint.step_number == step
        )
    )


def get_in_job(session: Session, job_pk: int, checkpoint_id: str) -> FineTuningCheckpoint | None:
    return session.scalar(
        select(FineTuningCheckpoint).where(
            FineTuningCheckpoint.job_pk == job_pk, FineTuningCheckpoint.id == checkpoint_id
        )
    )


def page(
    session: Session, job_pk: int, *, after: FineTuningCheckpoint | None, limit: int
) -> list[FineTuningCheckpoint]:
    """Newest (highest step) first, one row more than asked."""
    query = select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_pk == job_pk)
    if after is not None:
        query = query.where(FineTuningCheckpoint.step_number < after.step_number)
    return list(session.scalars(query.order_by(FineTuningCheckpoint.step_number.desc()).limit(limit + 1)))


def _usable_by(query: Select[Any], scope: int | None) -> Select[Any]:
    """Limit to checkpoints of the project or shared with it; scope None (an admin) keeps all."""
    if scope is None:
        return query
    shared = exists().where(
        CheckpointPermission.checkpoint_pk == FineTuningCheckpoint.pk,
        CheckpointPermission.project_pk == scope,
    )
    return query.where(or_(FineTuningCheckpoint.project_pk == scope, shared))


def by_model_name(session: Session, scope: int | None, name: str) -> FineTuningCheckpoint | None:
    query = select(FineTuningCheckpoint).where(FineTuningCheckpoint.fine_tuned_model_checkpoint == name)
    return session.scalar(_usable_by(query, scope))


def usable(session: Session, scope: int | None) -> list[FineTuningCheckpoint]:
    query = _usable_by(select(FineTuningCheckpoint), scope)
    return list(session.scalars(query.order_by(FineTuningCheckpoint.pk)))


def permission(session: Session, checkpoint_pk: int, permission_id: str) -> CheckpointPermission | None:
    return session.scalar(
        select(CheckpointPermission).where(
            CheckpointPermission.checkpoint_pk == checkpoint_pk, CheckpointPermission.id == permission_id
        )
    )


def permission_for(session: Session, checkpoint_pk: int, project_pk: int) -> CheckpointPermission | None:
    return session.scalar(
        select(CheckpointPermission).where(
            CheckpointPermission.checkpoint_pk == checkpoint_pk, CheckpointPermission.project_pk == project_pk
        )
    )


def permissions_page(
    session: Session,
    checkpoint_pk: int,
    *,
    after: CheckpointPermission | None,
    limit: int,
    newest_first: bool,
    project_pk: int | None,
) -> list[CheckpointPermission]:
    query = select(CheckpointPermission).where(CheckpointPermission.checkpoint_pk == checkpoint_pk)
    if project_pk is not None:
        query = query.where(CheckpointPermission.project_pk == project_pk)
    if after is not None:
        query = query.where(
            CheckpointPermission.pk < after.pk if newest_first else CheckpointPermission.pk > after.pk
        )
    order = CheckpointPermission.pk.desc() if newest_first else CheckpointPermission.pk.asc()
    return list(session.scalars(query.order_by(order).limit(limit + 1)))


def delete(session: Session, row: CheckpointPermission) -> None:
    session.delete(row)
    session.flush()
