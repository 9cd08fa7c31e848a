"""Queries on projects and API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.tables import ApiKey, Project


def project_by_name(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def add(session: Session, row: Project | ApiKey) -> None:
    session.add(row)
    session.flush()


def active_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def project_by_id(session: Session, project_id: str) -> Project | None:
    return session.scalar(select(Project).where(Project.id == project_id))


def projects_by_ids(session: Session, project_ids: list[str]) -> list[Project]:
    return list(session.scalars(select(Project).where(Project.id.in_(project_ids))))


def key_by_id(session: Session, key_id: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id))


def all_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.pk)))
