"""Apply the alembic revisions programmatically (the CLI's ``database upgrade`` does the same)."""

from __future__ import annotations

from advanced_alchemy.alembic.commands import AlembicCommands

from notification.config import Settings
from notification.db import sqlalchemy_config


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Bring the schema (the service's tables and procrastinate's) up to ``revision``.

    Runs its own event loop: call it from synchronous code or a worker thread.
    """
    AlembicCommands(sqlalchemy_config=sqlalchemy_config(settings)).upgrade(revision=revision)
