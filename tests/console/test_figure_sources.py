"""The dashboard's and a mailing page's figures come from the counters and rollups: no plan of
theirs reads ``messages``, so they cost the same at ten million messages as at ten."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.stats import queries

NOW = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
HOUR_AGO = NOW - dt.timedelta(hours=1)

FIGURES: dict[str, tuple[TextClause, dict[str, Any]]] = {
    "dashboard: messages by status": (queries.statements.text("message_totals"), {}),
    "dashboard: today's messages": (
        queries.statements.text("totals_of_mailings_running_between"),
        {"since": HOUR_AGO, "until": NOW},
    ),
    "dashboard: errors of the last hour": (queries.statements.text("error_kinds_since"), {"since": HOUR_AGO}),
    "dashboard: sent per minute": (
        queries.statements.text("sends_per_minute"),
        {"since": HOUR_AGO, "until": NOW, "mailing_id": None},
    ),
    "mailing: counts": (queries.statements.text("mailing_counts"), {"mailing_id": 1}),
    "mailing: error kinds": (queries.statements.text("mailing_error_kinds"), {"mailing_id": 1}),
    "mailing: messages per provider": (queries.statements.text("mailing_provider_counts"), {"mailing_id": 1}),
    "dashboard: messages per provider": (queries.statements.text("provider_totals"), {}),
    "mailing: timings": (queries.statements.text("mailing_timings"), {"mailing_id": 1}),
}


def _relations(node: dict[str, Any]) -> set[str]:
    found = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= _relations(child)
    return found


@pytest.mark.parametrize("figure", list(FIGURES))
async def test_a_figure_reads_no_message(db: AsyncSession, figure: str) -> None:
    statement, params = FIGURES[figure]
    plan = (await db.execute(text(f"EXPLAIN (FORMAT JSON) {statement.text}"), params)).scalar_one()
    await db.rollback()
    relations = _relations(plan[0]["Plan"])
    assert relations, figure
    assert "messages" not in relations, f"{figure} reads messages: {sorted(relations)}"
