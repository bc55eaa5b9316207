"""The alembic revisions are the schema: they must match the models and undo cleanly."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text

import notification.models  # noqa: F401  (registers every table)
from notification.config import Settings
from notification.db import sqlalchemy_config


def _sync_url(settings: Settings) -> str:
    return make_url(settings.psycopg_conninfo).set(drivername="postgresql+psycopg").render_as_string(False)


def _differences(settings: Settings) -> list[Any]:
    def outside_procrastinate(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (name or "").startswith("procrastinate")

    engine = create_engine(_sync_url(settings))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": outside_procrastinate}
            )
            return list(compare_metadata(context, metadata_registry.get(None)))
    finally:
        engine.dispose()


def _tables(settings: Settings) -> set[str]:
    engine = create_engine(_sync_url(settings))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(settings: Settings) -> None:
    assert _differences(settings) == []


def test_every_revision_downgrades_and_upgrades_again(settings: Settings) -> None:
    commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(replace(settings)))
    commands.downgrade(revision="base")
    assert _tables(settings) <= {"alembic_version"}
    commands.upgrade(revision="head")
    assert {"clients", "mailings", "messages", "procrastinate_jobs"} <= _tables(settings)
    assert _differences(settings) == []


def test_the_single_rate_budget_row_becomes_the_default_provider_s(settings: Settings) -> None:
    """Revision 0012 keys the budget by provider: the one row of before, hold and all, is the default's."""
    commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(replace(settings)))
    commands.downgrade(revision="0011")
    engine = create_engine(_sync_url(settings))
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE provider_rate_budget SET tokens = -7, blocked_until = now() + interval '1 hour'")
            )
        commands.upgrade(revision="head")
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT provider, tokens, blocked_until > now() FROM provider_rate_budget")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in found] == [("default", -7.0, True)]
