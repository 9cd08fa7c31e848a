"""Queries on files."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.tables import File


def add(session: Session, row: File) -> None:
    session.add(row)
    session.flush()


def get(session: Session, project_pk: int, file_id: str) -> File | None:
    return session.scalar(select(File).where(File.id == file_id, File.project_pk == project_pk))


def get_any_project(session: Session, file_id: str) -> File | None:
    """For the worker, which acts for whichever project owns the job."""
    return session.scalar(select(File).where(File.id == file_id))


def page(
    session: Session,
    project_pk: int,
    *,
    purpose: str | None,
    after: File | None,
    limit: int,
    newest_first: bool,
) -> list[File]:
    """One page plus one row more, so the caller can tell whether more follow."""
    query = select(File).where(File.project_pk == project_pk)
    if purpose:
        query = query.where(File.purpose == purpose)
    if after is not None:
        query = query.where(File.pk < after.pk if newest_first else File.pk > after.pk)
    query = query.order_by(File.pk.desc() if newest_first else File.pk.asc()).limit(limit + 1)
    return list(session.scalars(query))


def delete(session: Session, row: File) -> None:
    session.delete(row)
    session.flush()
