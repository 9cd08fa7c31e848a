"""Applying Alembic migrations: `tunery migrate`, and the test suite's fresh databases."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config

from api.config import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    if not settings.database_url:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


def pending_reason(settings: Settings) -> str | None:
    """Why this release may not use the database yet (None: it may).

    The database may use it when it is at this release's head, or at a revision this release does
    not know: a newer release migrated it, and during a rolling update the old pods keep running
    on the schema its migrations kept compatible.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    script = ScriptDirectory.from_config(alembic_config(settings))
    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as error:
        return f"the database cannot be reached: {type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    heads = set(script.get_heads())
    if current == heads:
        return None
    known = {revision.revision for revision in script.walk_revisions()}
    if current and not current <= known:
        return None
    return f"the database is at {sorted(current) or 'no revision'}, this release needs {sorted(heads)}"


def wait_for_head(settings: Settings, timeout: float, interval: float = 2.0) -> str | None:
    """Poll until the database may be used (None), or give the last reason after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        reason = pending_reason(settings)
        if reason is None or time.monotonic() + interval > deadline:
            return reason
        time.sleep(interval)
