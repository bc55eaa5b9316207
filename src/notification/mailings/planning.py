"""Planning a mailing: its messages created set-based, then send jobs deferred in batches.

Everything happens in one transaction with the mailing row locked: the messages, the send jobs
and the mark that this plan version is done commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row

from notification.mailings.send_window import WINDOW_NEVER_OPENS, openings_by_zone, wait_for_opening_sql

logger = structlog.get_logger(__name__)

ANALYZE_AFTER_ROWS = 10_000

DeferSends = Callable[[AsyncConnection, int, int, list[list[int]], dt.datetime | None], Awaitable[None]]
"""Defers one ``send_messages`` job per id list, all scheduled at a time (None: now)."""


@dataclass(slots=True)
class PlanReport:
    planned: bool = False
    reason: str | None = None
    added: int = 0
    cancelled: int = 0
    expired: int = 0
    delayed: int = 0
    batches: int = 0


_LOCK_MAILING = """
SELECT id, start_at, end_at, filter_operator_codes, filter_tags, send_window_start, send_window_end,
       plan_version, planned_version, now() AS now
FROM mailings WHERE id = %(mailing_id)s FOR UPDATE
"""


def client_filter(operator_codes: list[str], tags: list[str], alias: str = "c") -> sql.Composable:
    """The mailing's filter as SQL; an empty list filters nothing, so it adds no condition."""
    conditions: list[sql.Composable] = [sql.SQL("TRUE")]
    if operator_codes:
        conditions.append(sql.SQL("{}.operator_code = ANY(%(operator_codes)s)").format(sql.Identifier(alias)))
    if tags:
        conditions.append(sql.SQL("{}.tag = ANY(%(tags)s)").format(sql.Identifier(alias)))
    return sql.SQL(" AND ").join(conditions)


# A client cancelled by an earlier plan and matching again is planned again; nothing else that
# already exists is touched, so planning twice never duplicates a message.
_ADD_MATCHING = """
INSERT INTO messages (mailing_id, client_id, due_at)
SELECT %(mailing_id)s, c.id, %(now)s FROM clients c WHERE {filter}
ON CONFLICT (mailing_id, client_id) DO UPDATE
SET status = 'pending', due_at = excluded.due_at, last_error = NULL, leased_until = NULL
WHERE messages.status = 'cancelled'
"""

# Messages are locked in id order before any write, the order every writer of messages uses.
_CANCEL_UNMATCHED = """
WITH unmatched AS (
    SELECT m.id FROM messages m
    WHERE m.mailing_id = %(mailing_id)s AND m.status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = m.client_id AND {filter})
    ORDER BY m.id FOR UPDATE
)
UPDATE messages m SET status = 'cancelled', leased_until = NULL
FROM unmatched WHERE m.id = unmatched.id AND m.status = 'pending'
"""

# Messages waiting for a retry keep their later due time; the rest are due from now on.
_RESCHEDULE = """
WITH overdue AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = 'pending' AND due_at < %(now)s
    ORDER BY id FOR UPDATE
)
UPDATE messages m SET due_at = %(now)s FROM overdue WHERE m.id = overdue.id
"""

# On a re-plan, a message never tried yet (no last_error) that waits in the future can only be
# waiting for a send window the update may have moved or removed: it is due again, and the
# window, if any, is applied afresh below. Messages waiting for a retry keep their backoff.
_RESET_WINDOW_WAITS = """
WITH waiting AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = 'pending' AND due_at > %(now)s AND last_error IS NULL
    ORDER BY id FOR UPDATE
)
UPDATE messages m SET due_at = %(now)s FROM waiting WHERE m.id = waiting.id
"""

_PENDING_ZONES = """
SELECT DISTINCT c.timezone FROM messages m JOIN clients c ON c.id = m.client_id
WHERE m.mailing_id = %(mailing_id)s AND m.status = 'pending'
"""

_APPLY_WINDOW = wait_for_opening_sql("m.mailing_id = %(mailing_id)s")

_ADD_EXPIRED = """
INSERT INTO messages (mailing_id, client_id, due_at, status, last_error)
SELECT %(mailing_id)s, c.id, %(now)s, 'expired', 'end_at passed before the mailing could start'
FROM clients c WHERE {filter}
ON CONFLICT (mailing_id, client_id) DO NOTHING
"""

_EXPIRE_ALL = """
WITH pending AS (
    SELECT id FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'pending' ORDER BY id FOR UPDATE
)
UPDATE messages m SET status = 'expired', leased_until = NULL, last_error = 'end_at passed before it could be sent'
FROM pending WHERE m.id = pending.id AND m.status = 'pending'
"""

# Batches in due order, so that one batch holds messages due at about the same time.
_BATCHES = """
SELECT array_agg(id ORDER BY id) AS ids, min(due_at) AS due_at
FROM (
    SELECT id, due_at, (row_number() OVER (ORDER BY due_at, id) - 1) / %(batch_size)s AS batch
    FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'pending'
) pending
GROUP BY batch ORDER BY batch
"""

_MARK_PLANNED = """
UPDATE mailings SET planned_version = %(plan_version)s, planned_at = now() WHERE id = %(mailing_id)s
"""


async def plan_mailing(
    conn: AsyncConnection, mailing_id: int, plan_version: int, batch_size: int, defer_sends: DeferSends
) -> PlanReport:
    report = PlanReport()
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        mailing = await (await cur.execute(_LOCK_MAILING, {"mailing_id": mailing_id})).fetchone()
        if mailing is None:
            report.reason = "mailing deleted"
            return report
        if mailing["plan_version"] != plan_version or mailing["planned_version"] >= plan_version:
            report.reason = "plan superseded or already done"
            return report
        now: dt.datetime = mailing["now"]
        if now < mailing["start_at"]:
            report.reason = "not due yet"
            return report
        params: dict[str, Any] = {
            "mailing_id": mailing_id,
            "now": now,
            "operator_codes": mailing["filter_operator_codes"],
            "tags": mailing["filter_tags"],
            "plan_version": plan_version,
            "batch_size": batch_size,
        }
        condition = client_filter(mailing["filter_operator_codes"], mailing["filter_tags"])
        if now >= mailing["end_at"]:
            # Planned too late (workers were down): the audience still shows in the statistics,
            # every message expired, none sent.
            report.expired = (await cur.execute(_EXPIRE_ALL, params)).rowcount
            report.expired += (await cur.execute(sql.SQL(_ADD_EXPIRED).format(filter=condition), params)).rowcount
        else:
            report.added = (await cur.execute(sql.SQL(_ADD_MATCHING).format(filter=condition), params)).rowcount
            if report.added >= ANALYZE_AFTER_ROWS:
                # Autovacuum would refresh the statistics only later: until then the planner
                # still sees the small table it knew, and its per-batch queries turn to
                # sequential scans of the whole table.
                await cur.execute("ANALYZE messages")
            if mailing["planned_version"] > 0:
                cancel = sql.SQL(_CANCEL_UNMATCHED).format(filter=condition)
                report.cancelled = (await cur.execute(cancel, params)).rowcount
                await cur.execute(_RESCHEDULE, params)
                await cur.execute(_RESET_WINDOW_WAITS, params)
            if mailing["send_window_start"] is not None:
                await _apply_window(cur, mailing, params, report)
            batches = await (await cur.execute(_BATCHES, params)).fetchall()
            report.batches = len(batches)
            await _defer_batches(conn, mailing_id, plan_version, now, batches, defer_sends)
        await cur.execute(_MARK_PLANNED, params)
        report.planned = True
    logger.info(
        "mailing planned",
        mailing_id=mailing_id,
        plan_version=plan_version,
        added=report.added,
        cancelled=report.cancelled,
        expired=report.expired,
        delayed=report.delayed,
        batches=report.batches,
    )
    return report


async def _apply_window(
    cur: AsyncCursor[dict[str, Any]], mailing: dict[str, Any], params: dict[str, Any], report: PlanReport
) -> None:
    """Moves each pending message to its client's next window opening: computed once per
    distinct time zone in Python (zoneinfo, DST-correct), applied to every message in one UPDATE."""
    rows = await (await cur.execute(_PENDING_ZONES, params)).fetchall()
    zones, openings = openings_by_zone(
        mailing["send_window_start"], mailing["send_window_end"], (r["timezone"] for r in rows), params["now"]
    )
    if not zones:
        return
    changed = await (
        await cur.execute(
            _APPLY_WINDOW,
            {
                **params,
                "zones": zones,
                "openings": openings,
                "end_at": mailing["end_at"],
                "never_opens": WINDOW_NEVER_OPENS,
            },
        )
    ).fetchall()
    expired = sum(1 for r in changed if r["status"] == "expired")
    report.expired += expired
    report.delayed += len(changed) - expired


async def _defer_batches(
    conn: AsyncConnection,
    mailing_id: int,
    plan_version: int,
    now: dt.datetime,
    batches: list[dict[str, Any]],
    defer_sends: DeferSends,
) -> None:
    by_time: dict[dt.datetime | None, list[list[int]]] = {}
    for batch in batches:
        at = batch["due_at"] if batch["due_at"] > now else None
        by_time.setdefault(at, []).append(batch["ids"])
    for at, id_lists in by_time.items():
        await defer_sends(conn, mailing_id, plan_version, id_lists, at)
