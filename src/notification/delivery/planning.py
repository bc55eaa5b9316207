"""Planning a mailing: its messages created set-based, then grouped into send batches.

It runs inside the caller's transaction with the mailing row locked (see ``tasks.plan_mailing``,
which defers the batches' send jobs in that same transaction): the messages, the send jobs and
the mark that this plan version is done commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row

from notification.clients.queries import attributes_parameter, audience_filter
from notification.delivery.policy import last_request_start
from notification.delivery.queries import composed, queries
from notification.mailings.models import MailingKind
from notification.messages.models import MessageStatus
from notification.send_window import openings_by_zone

ANALYZE_AFTER_ROWS = 10_000


@dataclass(slots=True)
class PlanReport:
    planned: bool = False
    reason: str | None = None
    added: int = 0
    cancelled: int = 0
    expired: int = 0
    left_out_suppressed: int = 0
    left_out_no_consent: int = 0
    delayed: int = 0
    send_batches: dict[dt.datetime | None, list[list[int]]] = field(default_factory=dict)
    """Message ids of each send job to defer, by the time it is due (None: now)."""

    @property
    def batches(self) -> int:
        return sum(len(id_lists) for id_lists in self.send_batches.values())


async def plan_mailing(conn: AsyncConnection, mailing_id: int, plan_version: int, batch_size: int) -> PlanReport:
    """Plans this version of the mailing; to be called inside a transaction of ``conn``."""
    report = PlanReport()
    cur = conn.cursor(row_factory=dict_row)
    mailing = await (await cur.execute(queries["lock_mailing_for_planning"], {"mailing_id": mailing_id})).fetchone()
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
        "attributes": attributes_parameter(mailing["filter_attributes"]),
        "plan_version": plan_version,
        "batch_size": batch_size,
        "advertising": mailing["kind"] == MailingKind.ADVERTISING,
    }
    matching = audience_filter(mailing["filter_operator_codes"], mailing["filter_tags"], mailing["filter_attributes"])
    # Who the plan adds: the filter's clients that the suppression list and consent allow.
    allowed = sql.SQL(" AND ").join([matching, sql.SQL(queries["may_receive"])])
    await cur.execute(queries["lock_messages_of_mailing"], params)
    left_out = await (await cur.execute(composed("count_left_out", filter=matching), params)).fetchone() or {}
    report.left_out_suppressed = left_out.get("suppressed", 0)
    report.left_out_no_consent = left_out.get("no_consent", 0)
    await cur.execute(
        queries["record_left_out"],
        {**params, "suppressed": report.left_out_suppressed, "no_consent": report.left_out_no_consent},
    )
    if now >= last_request_start(mailing["end_at"]):
        # Planned too late (workers were down), past the last moment a request may start: the
        # audience still shows in the statistics, every message expired, none sent.
        report.expired = (await cur.execute(queries["expire_pending_of_mailing"], params)).rowcount
        add_expired = composed("add_expired_audience", filter=allowed)
        report.expired += (await cur.execute(add_expired, params)).rowcount
    else:
        add = composed("add_matching_clients", filter=allowed)
        report.added = (await cur.execute(add, params)).rowcount
        if report.added >= ANALYZE_AFTER_ROWS:
            # Autovacuum would refresh the statistics only later: until then the planner
            # still sees the small table it knew, and its per-batch queries turn to
            # sequential scans of the whole table.
            await cur.execute(queries["analyze_messages"])
        if mailing["planned_version"] > 0:
            # Suppressed or without consent since the last plan: cancelled with that reason,
            # before the filter cancels whoever no longer matches at all.
            report.cancelled = (await cur.execute(queries["cancel_ineligible_of_mailing"], params)).rowcount
            cancel = composed("cancel_unmatched", filter=matching)
            report.cancelled += (await cur.execute(cancel, params)).rowcount
            await cur.execute(queries["make_overdue_due_now"], params)
            await cur.execute(queries["reset_window_waits"], params)
        if mailing["send_window_start"] is not None:
            await _apply_window(cur, mailing, params, report)
        if mailing["paused_at"] is not None:
            # Its messages exist (the statistics show the audience); the resume plans again and
            # defers their send jobs then.
            report.reason = "paused"
        else:
            for batch in await (await cur.execute(queries["pending_batches"], params)).fetchall():
                at = batch["due_at"] if batch["due_at"] > now else None
                report.send_batches.setdefault(at, []).append(batch["ids"])
    await cur.execute(queries["mark_planned"], params)
    report.planned = True
    return report


_WAIT_FOR_OPENING_OF_MAILING = composed("wait_for_opening", scope=sql.SQL("m.mailing_id = %(mailing_id)s"))


async def _apply_window(
    cur: AsyncCursor[dict[str, Any]], mailing: dict[str, Any], params: dict[str, Any], report: PlanReport
) -> None:
    """Moves each pending message to its client's next window opening: computed once per
    distinct time zone in Python (zoneinfo, DST-correct), applied to every message in one UPDATE."""
    rows = await (await cur.execute(queries["pending_zones_of_mailing"], params)).fetchall()
    zones, openings = openings_by_zone(
        mailing["send_window_start"], mailing["send_window_end"], (r["timezone"] for r in rows), params["now"]
    )
    if not zones:
        return
    window_params = {
        **params,
        "zones": zones,
        "openings": openings,
        "last_request_start": last_request_start(mailing["end_at"]),
    }
    changed = await (await cur.execute(_WAIT_FOR_OPENING_OF_MAILING, window_params)).fetchall()
    expired = sum(1 for r in changed if r["status"] == MessageStatus.EXPIRED)
    report.expired += expired
    report.delayed += len(changed) - expired
