"""The suppression list's SQL (``queries.sql``), read once: the service and the daily report run it."""

from __future__ import annotations

from notification.lib.sql import load

statements = load(__package__, "queries.sql")
