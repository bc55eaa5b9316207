"""The daily report counts the day's opt-outs in its local day: stop words, every suppression, and
revoked consents, each against a direct count of what the test wrote around the day's edges."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from notification.reports.content import build_report, day_bounds
from notification.reports.rendering import render_text

TZ = "America/New_York"
D = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 11, 9, 30, tzinfo=dt.UTC)


async def test_the_report_counts_the_days_opt_outs(conn: psycopg.AsyncConnection[Any]) -> None:
    start, end = day_bounds(D, TZ)
    edge = dt.timedelta(seconds=1)
    moments = [start - edge, start, start + dt.timedelta(hours=5), end - edge, end]
    for i, at in enumerate(moments):
        for j, reason in enumerate(("stop_word", "complaint")):
            await conn.execute(
                "INSERT INTO suppressions (phone, reason, created_at, created_by) VALUES (%s, %s, %s, 'test')",
                (f"7916{i}{j}00000", reason, at),
            )
        await conn.execute(
            "INSERT INTO clients (phone, operator_code, timezone, consent_given_at, consent_revoked_at)"
            " VALUES (%s, '916', 'UTC', %s, %s)",
            (f"7903{i}000000", at - dt.timedelta(days=30), at),
        )

    report = await build_report(conn, D, TZ, NOW)

    inside = sum(1 for at in moments if start <= at < end)
    assert inside == 3
    assert (report.opt_outs.stop_words, report.opt_outs.suppressed, report.opt_outs.consents_revoked) == (
        inside,
        2 * inside,
        inside,
    )
    text = render_text(report)
    assert "  stop words        3\n" in text
    assert "  consents revoked  3\n" in text
