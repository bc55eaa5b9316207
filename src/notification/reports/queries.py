"""The daily report's SQL: the named statements of ``queries.sql`` (psycopg), read once at import."""

from __future__ import annotations

from notification.lib.sql import load
from notification.messages.state import MESSAGE_ENUMS
from notification.reports.models import DeliveryStatus
from notification.stats.queries import statements as stats_statements

statements = load(
    __package__,
    "queries.sql",
    enums={**MESSAGE_ENUMS, "delivery": DeliveryStatus},
    include=[stats_statements],
)
