"""Queries on files."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from api import clock
from api.tables import File


def visible(query: Select[Any], scope: int | None) -> Select[Any]:
    """Files of the caller's project (all projects for scope None) that have not expired."""
    if scope is not None:
        query = query.where(File.project_pk == scope)
    return query.where(or_(File.expires_at.is_(None), File.expires_at > clock.now()))


def add(session: Session, row: File) -> None:
    session.add(row)
    session.flush()


def get(session: Session, scope: int | None, file_id: str) -> File | None:
    return session.scalar(visible(select(File).where(File.id == file_id), scope))


def get_any_project(session: Session, file_id: str) -> File | None:
    """For the worker, which acts for whichever project owns the job."""
    return session.scalar(select(File).where(File.id == file_id))


def known_keys(session: Session, keys: list[str]) -> set[str]:
    """Those of `keys` that a file row names (expired or not)."""
    return set(session.scalars(select(File.storage_key).where(File.storage_key.in_(keys))))


def page(
    session: Session,
    scope: int | None,
    *,
    purpose: str | None,
    after: File | None,
    limit: int,
    newest_first: bool,
) -> list[File]:
    """One page plus one row more, so the caller can tell whether more follow."""
    query = visible(select(File), scope)
    if purpose:
        query = query.where(File.purpose == purpose)
    if after is not None:
        query = query.where(File.pk < after.pk if newest_first else File.pk > after.pk)
    query = query.order_by(File.pk.desc() if newest_first else File.pk.asc()).limit(limit + 1)
    return list(session.scalars(query))


def delete(session: Session, row: File) -> None:
    session.delete(row)
    session.flush()
