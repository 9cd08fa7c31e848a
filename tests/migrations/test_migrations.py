"""Migrations on both databases: they apply, they reverse, and they match the tables in code."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from api.config import Settings
from api.migrations import downgrade, upgrade
from api.tables import Base

pytestmark = pytest.mark.integration


def table_names(settings: Settings) -> set[str]:
    engine = create_engine(settings.sqlalchemy_url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_match_the_tables_in_code(settings: Settings) -> None:
    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "the tables changed without a migration: run alembic revision --autogenerate"


def test_downgrade_to_base_and_up_again(settings: Settings) -> None:
    assert table_names(settings) == set(Base.metadata.tables)
    downgrade(settings, "base")
    assert table_names(settings) == set()
    upgrade(settings)
    assert table_names(settings) == set(Base.metadata.tables)
