"""The SQL of audiences, facets and operator code names: the named statements of ``queries.sql``,
read once at import."""

from __future__ import annotations

from notification.lib.sql import load

statements = load(__package__, "queries.sql")
