"""The claim of a batch, and what is left of it afterwards.

A claim leases each message for a while and only pending, due, unleased messages can be claimed,
so a batch is safe to run twice, even at once. The follow-up reads which of the batch's messages
are still pending once it ran, and when the next of them is due.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row

from notification.delivery.policy import DEADLINE_PASSED, Window, last_request_start
from notification.delivery.queries import composed, queries
from notification.mailings.models import MailingKind
from notification.mailings.sms import Encoding, SmsText
from notification.messages.models import MessageStatus
from notification.send_window import openings_by_zone
from notification.texts.templates import Recipient, is_template


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    client_id: int
    phone: str
    attempts: int
    timezone: str | None = None
    operator_code: str | None = None
    """The client's operator: what routing to one provider or another goes by."""
    last_provider: str | None = None
    """The provider of its previous attempt: a retry after a transient failure goes to the next one."""
    tag: str = ""
    attributes: dict[str, str] | None = None
    """The client's attributes as claimed: a personalised text is rendered from them at its request."""

    def recipient(self) -> Recipient:
        return Recipient(self.phone, self.tag, self.operator_code or "", self.timezone or "", self.attributes)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a batch sends: its mailing's text as claimed, and the messages it now holds."""

    text: str
    sms: SmsText
    """The mailing's text as measured when written: what each message of a plain text costs."""
    end_at: dt.datetime
    window: Window | None
    messages: list[ClaimedMessage]
    expired: int = 0
    """Messages of the batch the claim expired: their window never opens before the end."""
    with_attributes: bool = False
    """Whether the clients' attributes were read: only for a text personalised when claimed."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing claimed: why, and how many of the batch's messages expired instead."""

    reason: str
    expired: int = 0


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The batch's messages still pending, and when the next of them is due."""

    message_ids: list[int]
    at: dt.datetime


async def claim_batch(
    conn: AsyncConnection, mailing_id: int, plan_version: int, ids: list[int], lease_s: float
) -> Claim | Skipped:
    cur = conn.cursor(row_factory=dict_row)
    mailing = await (await cur.execute(queries["mailing_for_batch"], {"mailing_id": mailing_id})).fetchone()
    if mailing is None:
        return Skipped("mailing deleted")
    if mailing["plan_version"] != plan_version:
        return Skipped("plan superseded")
    if mailing["paused_at"] is not None:
        # Its messages stay pending, unclaimed: the resume plans them again.
        return Skipped("mailing paused")
    if mailing["now"] >= last_request_start(mailing["end_at"]):
        async with conn.transaction():
            await cur.execute(queries["expire_in_batch"], {"ids": ids, "reason": DEADLINE_PASSED})
        return Skipped("mailing ended", cur.rowcount)
    with_attributes = is_template(mailing["text"])
    params = {
        "ids": ids,
        "mailing_id": mailing_id,
        "lease_s": lease_s,
        "with_attributes": with_attributes,
        "advertising": mailing["kind"] == MailingKind.ADVERTISING,
    }
    window: Window | None = None
    if mailing["send_window_start"] is not None and mailing["send_window_end"] is not None:
        window = (mailing["send_window_start"], mailing["send_window_end"])
    expired = 0
    async with conn.transaction():
        # An opt-out since the plan (a STOP, a revoked consent) settles the message before any
        # request: cancelled with its reason, never claimed.
        await cur.execute(queries["cancel_ineligible_in_batch"], params)
        if window is None:
            rows = await (await cur.execute(queries["claim"], params)).fetchall()
        else:
            params |= {"window_start": window[0], "window_end": window[1]}
            rows = await (await cur.execute(queries["claim_in_window"], params)).fetchall()
            expired = await _wait_for_window(cur, params, window, mailing["end_at"])
    claimed = [
        ClaimedMessage(
            r["id"],
            r["client_id"],
            r["phone"],
            r["attempts"],
            r["timezone"],
            r["operator_code"],
            r["provider"],
            r["tag"],
            r["attributes"],
        )
        for r in rows
    ]
    return Claim(mailing["text"], stored_cost(mailing), mailing["end_at"], window, claimed, expired, with_attributes)


def stored_cost(mailing: dict[str, Any]) -> SmsText:
    """The cost stored with the mailing's text (a plain text's exactly)."""
    return SmsText(Encoding(mailing["encoding"]), 0, mailing["parts"])


async def _wait_for_window(
    cur: AsyncCursor[dict[str, Any]], params: dict[str, Any], window: Window, end_at: dt.datetime
) -> int:
    """The batch's due messages that the claim left because their client's window is closed
    (a retry's backoff, or a batch mixing zones, brought them here early) move to their zone's
    next opening, computed once per distinct zone; the follow-up job then waits for it. Returns
    how many expired instead."""
    zone_rows = await (await cur.execute(queries["closed_zones_in_batch"], params)).fetchall()
    if not zone_rows:
        return 0
    now = (await (await cur.execute(queries["database_now"])).fetchone() or {})["now"]
    zones, openings = openings_by_zone(window[0], window[1], (r["timezone"] for r in zone_rows), now)
    if not zones:
        return 0
    changed_params = params | {"zones": zones, "openings": openings, "last_request_start": last_request_start(end_at)}
    changed = await (await cur.execute(_WAIT_FOR_OPENING_IN_BATCH, changed_params)).fetchall()
    return sum(1 for r in changed if r["status"] == MessageStatus.EXPIRED)


_WAIT_FOR_OPENING_IN_BATCH = composed("wait_for_opening", scope=sql.SQL(queries["due_in_batch"]))


async def give_back_unsent(conn: AsyncConnection, ids: list[int]) -> None:
    """Claimed by a batch that stopped before sending them: free again, the claim's attempt undone."""
    await conn.execute(queries["give_back_unsent"], {"ids": ids})


async def follow_up(conn: AsyncConnection, ids: list[int], end_at: dt.datetime) -> FollowUp | None:
    """Whatever is still pending in the batch is due again at some time, or expires now if
    that is at or after its last request start; to be called in the transaction that defers the
    follow-up."""
    cur = conn.cursor(row_factory=dict_row)
    remaining = await (await cur.execute(queries["remaining_in_batch"], {"ids": ids})).fetchone()
    if remaining is None or not remaining["ids"]:
        return None
    next_at: dt.datetime = remaining["next_at"]
    if next_at >= last_request_start(end_at):
        await cur.execute(queries["expire_in_batch"], {"ids": remaining["ids"], "reason": None})
        return None
    return FollowUp(remaining["ids"], next_at)
