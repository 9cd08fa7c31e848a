"""The worker process's shared objects, made lazily so each forked pool process opens its own engine."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from api.config import Settings
from api.db import make_engine, make_sessionmaker
from api.files.storage import FileStorage
from api.models.store import ModelStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    file_storage: FileStorage
    model_store: ModelStore
    worker_id: str = field(default_factory=lambda: new_worker_id())


def new_worker_id() -> str:
    """Names the lease holder in the job row: which machine and process, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    settings = Settings()
    return Runtime(
        settings=settings,
        sessions=make_sessionmaker(make_engine(settings), settings),
        file_storage=FileStorage.of(settings),
        model_store=ModelStore(settings.models_path),
    )
