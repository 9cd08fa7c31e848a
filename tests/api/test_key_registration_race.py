"""Two processes registering the same key at once (two API processes starting on one PostgreSQL
database): the second waits for the first and finds its project and key, instead of failing on the
unique constraint. SQLite takes its write lock at BEGIN, so there the two never overlap."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from api.auth.service import register_key
from api.config import Settings
from api.db import make_engine, make_sessionmaker
from api.tables import ApiKey, Project

KEY = "tun-raced-key-0123456789abcdefghij"


def test_a_key_registered_by_two_processes_at_once_is_registered_once(
    settings: Settings, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite's writers never overlap")
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with sessions() as session:
                register_key(session, KEY, "raced")  # waits on the first's uncommitted rows
                session.commit()
        except BaseException as error:
            failures.append(error)

    try:
        with sessions() as first:
            register_key(first, KEY, "raced")
            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(1.0)  # the second is now blocked on the project's unique name
            assert thread.is_alive()
            first.commit()
        thread.join(30)
        assert not thread.is_alive() and failures == []
        with sessions() as session:
            assert (
                session.scalar(select(func.count()).select_from(Project).where(Project.name == "raced")) == 1
            )
            assert (
                session.scalar(
                    select(func.count()).select_from(ApiKey).where(ApiKey.display_prefix == KEY[:8])
                )
                == 1
            )
    finally:
        engine.dispose()
