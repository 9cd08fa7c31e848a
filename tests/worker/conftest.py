"""The worker's runtime over the test's settings: the objects a worker process builds at start."""

from __future__ import annotations

import pytest

from api.config import Settings
from api.db import make_engine, make_sessionmaker
from api.files.storage import FileStorage
from api.models.store import ModelStore
from worker.runtime import Runtime


@pytest.fixture
def runtime(settings: Settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings)
    yield Runtime(
        settings,
        make_sessionmaker(engine),
        FileStorage.of(settings),
        ModelStore(settings.models_path),
    )
    engine.dispose()
