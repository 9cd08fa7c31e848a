"""`tunery migrate --wait`: what a pod's init container runs so that it starts only after the
migration Job (deploy/kubernetes/) has brought the database to the pod's release."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from api.config import Settings
from api.migrations import downgrade, pending_reason, upgrade
from tests.support import services
from tests.support.processes import service_env

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_postgres(postgres_admin_url: str) -> Iterator[Settings]:
    """A Postgres database no migration has touched: what the Job finds on a first install."""
    with services.fresh_database(postgres_admin_url, prefix="tunery_wait") as url:
        yield Settings(database_url=url)


def _set_revision(settings: Settings, revision: str) -> None:
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    engine.dispose()


def test_a_database_at_head_may_be_used(settings: Settings) -> None:
    assert pending_reason(settings) is None


def test_a_database_no_migration_touched_must_wait(empty_postgres: Settings) -> None:
    reason = pending_reason(empty_postgres)
    assert reason is not None
    assert "no revision" in reason


def test_a_database_one_migration_behind_must_wait(settings: Settings) -> None:
    downgrade(settings, "-1")
    reason = pending_reason(settings)
    assert reason is not None
    assert "this release needs" in reason


def test_a_database_a_newer_release_migrated_may_be_used(settings: Settings) -> None:
    # During a rolling update the old release's pods restart on the new schema: they must start.
    _set_revision(settings, "2099_9999_newer")
    assert pending_reason(settings) is None


def test_an_unreachable_database_must_wait() -> None:
    port = services.free_port()  # nothing listens there
    reason = pending_reason(Settings(database_url=f"postgresql://tunery@127.0.0.1:{port}/tunery"))
    assert reason is not None
    assert "cannot be reached" in reason


def test_wait_returns_once_another_process_has_migrated(empty_postgres: Settings) -> None:
    env = service_env(empty_postgres, api_key="", port=0)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "migrate", "--wait", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=4)  # still waiting: the database has no schema yet
        upgrade(empty_postgres)  # the migration Job
        _, stderr = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, stderr
    assert "at this release's head" in stderr


def test_wait_gives_up_with_exit_status_1_and_its_reason(empty_postgres: Settings) -> None:
    env = service_env(empty_postgres, api_key="", port=0)
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "migrate", "--wait", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no revision" in result.stderr
    assert pending_reason(empty_postgres) is not None, "--wait applied a migration"
