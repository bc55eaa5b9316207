"""The SQL of schedules: the named statements of ``queries.sql``, read once at import."""

from __future__ import annotations

from notification.lib.sql import load
from notification.messages.state import MESSAGE_ENUMS

statements = load(__package__, "queries.sql", enums=MESSAGE_ENUMS)
