"""The engine's SQL: the named statements of ``queries.sql`` and of ``messages/state.sql``, read once
at import (see :mod:`notification.lib.sql` for the notation)."""

from __future__ import annotations

from psycopg import sql

from notification.lib.sql import load
from notification.messages.state import MESSAGE_ENUMS, state

queries = load(__package__, "queries.sql", enums=MESSAGE_ENUMS, include=[state])


def composed(name: str, **parts: sql.Composable) -> sql.Composed:
    """A statement whose remaining ``{placeholders}`` are filled with SQL built at run time."""
    return queries.composed(name, **parts)
