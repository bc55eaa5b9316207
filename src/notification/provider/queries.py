"""The provider package's SQL: the named statements of ``queries.sql``, read once at import."""

from __future__ import annotations

from notification.lib.sql import Statements, load

queries: Statements = load(__package__, "queries.sql")
