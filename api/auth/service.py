"""Projects and API keys: keys are random, shown once, and stored only as a sha256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

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
    """Who is calling: the project a key belongs to."""

    project: Project
    is_admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_project(session: Session, name: str = DEFAULT_PROJECT) -> Project:
    project = repository.project_by_name(session, name)
    if project is None:
        project = Project(id=new_id("proj_"), name=name, created_at=clock.now())
        repository.add(session, project)
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


def authenticate(session: Session, authorization: str | None) -> Caller:
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
    return Caller(project=row.project, is_admin=row.is_admin)
