"""Projects and API keys: keys are random, shown once, and stored only as a sha256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import clock
from api.auth import repository
from api.errors import AuthenticationFailed
from api.ids import new_id
from api.tables import ApiKey, Project

DEFAULT_PROJECT = "default"
KEY_PREFIX = "tun-"
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class Caller:
    """Who is calling: the project its key belongs to, and whether it may see every project.

    An admin key sees all projects unless it names one with the `OpenAI-Project` header (the SDK's
    `project=`); objects it creates go to the project it acts in.
    """

    project: Project
    is_admin: bool = False
    sees_all_projects: bool = False
    key_id: str = ""

    @property
    def scope(self) -> int | None:
        """The project pk every query is limited to; None for an admin looking across projects."""
        return None if self.sees_all_projects else self.project.pk


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_project(session: Session, name: str = DEFAULT_PROJECT) -> Project:
    project = repository.project_by_name(session, name)
    if project is not None:
        return project
    try:
        with session.begin_nested():
            project = Project(id=new_id("proj_"), name=name, created_at=clock.now())
            repository.add(session, project)
    except IntegrityError:
        # Another process made it first (two API processes starting on one database): use theirs.
        project = repository.project_by_name(session, name)
        if project is None:
            raise
    return project


def create_key(session: Session, project_name: str = DEFAULT_PROJECT, *, is_admin: bool = False) -> str:
    """Make a new key and return it in the clear: the only time anyone sees it."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    register_key(session, key, project_name, is_admin=is_admin)
    return key


def register_key(
    session: Session, key: str, project_name: str = DEFAULT_PROJECT, *, is_admin: bool = False
) -> None:
    """Accept a key chosen elsewhere (TUNERY_API_KEY). Registering the same key twice is a no-op."""
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"an API key must be at least {MIN_KEY_LENGTH} characters long")
    if repository.key_by_hash(session, hash_key(key)) is not None:
        return
    project = ensure_project(session, project_name)
    try:
        with session.begin_nested():
            repository.add(
                session,
                ApiKey(
                    id=new_id("key_"),
                    project_pk=project.pk,
                    key_hash=hash_key(key),
                    display_prefix=key[:8],
                    is_admin=is_admin,
                    created_at=clock.now(),
                    revoked_at=None,
                ),
            )
    except IntegrityError:
        # The same key registered at once by another process: registered, as asked.
        if repository.key_by_hash(session, hash_key(key)) is None:
            raise


def authenticate(session: Session, authorization: str | None, project_header: str | None = None) -> Caller:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as an 'Authorization: Bearer <key>' header."
        )
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationFailed("The Authorization header must be 'Bearer <key>'.")
    row = repository.active_key_by_hash(session, hash_key(key))
    if row is None:
        # Never echo the key: it may be a real secret pasted into the wrong place.
        raise AuthenticationFailed("Incorrect API key provided.")
    if not project_header:
        return Caller(row.project, row.is_admin, sees_all_projects=row.is_admin, key_id=row.id)
    if project_header == row.project.id:
        return Caller(row.project, row.is_admin, key_id=row.id)
    named = repository.project_by_id(session, project_header) if row.is_admin else None
    if named is None:
        # The same answer for a project that does not exist and one the key may not act in.
        raise AuthenticationFailed(
            f"The OpenAI-Project header names project {project_header!r}, which this key does not belong to.",
            code="mismatched_project",
        )
    return Caller(named, is_admin=True, key_id=row.id)


def project_by_id(session: Session, project_id: str) -> Project | None:
    return repository.project_by_id(session, project_id)


def projects_by_ids(session: Session, project_ids: list[str]) -> list[Project]:
    return repository.projects_by_ids(session, project_ids)


def list_keys(session: Session) -> list[ApiKey]:
    return repository.all_keys(session)


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revoke by the key's id (key_...), or by the key itself; a revoked key answers 401 from then on."""
    row = repository.key_by_id(session, key_id) or repository.key_by_hash(session, hash_key(key_id))
    if row is None:
        raise LookupError(f"no API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
    return row
