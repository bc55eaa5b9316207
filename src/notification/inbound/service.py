"""Receiving a mobile-originated message, whatever brought it (an SMSC's ``deliver_sm``, a provider's
HTTP callback): stored, and a stop word puts the sender on the suppression list in the same
transaction, its pending messages cancelled with it. The confirmation reply, when one is set, is a
job deferred in that transaction (by name), sent by a worker through the provider the word came from:
the caller (an SMSC waiting for its ``deliver_sm_resp``) never waits for a provider."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notification.config import Settings
from notification.jobs import defer_stop_reply
from notification.lib.sql import load
from notification.suppressions.models import SuppressionReason
from notification.suppressions.schemas import SuppressionCreate
from notification.suppressions.service import suppress_with_cursor

logger = structlog.get_logger(__name__)

statements = load(__package__, "queries.sql")

_ELEVEN_DIGITS = re.compile(r"^7[0-9]{10}$")
NATIONAL_LENGTH = 10


@dataclass(frozen=True, slots=True)
class Received:
    id: int | None
    """The stored message's id; None when the provider had handed this one over before."""
    stop_word: bool
    suppressed: bool
    """Whether the sender was put on the suppression list now (not already there)."""


def is_stop_word(text: str, stop_words: Iterable[str]) -> bool:
    return text.strip().casefold() in {word.strip().casefold() for word in stop_words}


def directory_phone(address: str) -> str | None:
    """The sender's address as the directory writes phones (7 and 10 digits), or None when it is no
    such number (an alphanumeric sender): ``+79161234567``, ``89161234567`` and ``9161234567`` all
    name ``79161234567``."""
    digits = address.strip().removeprefix("+")
    if len(digits) == NATIONAL_LENGTH + 1 and digits.startswith("8"):
        digits = "7" + digits[1:]
    elif len(digits) == NATIONAL_LENGTH and digits.isdigit():
        digits = "7" + digits
    return digits if _ELEVEN_DIGITS.match(digits) else None


async def receive_inbound(
    conn: AsyncConnection,
    settings: Settings,
    provider: str,
    phone: str,
    text: str,
    received_at: dt.datetime,
    provider_message_id: str | None = None,
) -> Received:
    """Stores one inbound message and applies a stop word, in one transaction of ``conn``."""
    stop = is_stop_word(text, settings.stop_words)
    number = directory_phone(phone)
    suppressed = False
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        stored = await (
            await cur.execute(
                statements["store"],
                {
                    "provider": provider,
                    "phone": phone,
                    "text": text,
                    "received_at": received_at,
                    "provider_message_id": provider_message_id,
                    "stop_word": stop,
                },
            )
        ).fetchone()
        if stored is None:
            return Received(None, stop, suppressed=False)
        if stop and number is not None:
            row = SuppressionCreate(number, SuppressionReason.STOP_WORD, f"stop word through {provider}"[:200])
            suppressed = bool(await suppress_with_cursor(cur, [row], f"inbound:{provider}"[:320]))
        if stop and settings.stop_reply:
            await defer_stop_reply(conn, provider, phone, stored["id"])
    logger.info(
        "inbound message stored",
        provider=provider,
        phone=phone,
        inbound_id=stored["id"],
        stop_word=stop,
        suppressed=suppressed,
    )
    return Received(stored["id"], stop, suppressed)


async def receive_from_smpp(settings: Settings, provider: str, phone: str, text: str, received_at: dt.datetime) -> None:
    """An SMSC's mobile-originated ``deliver_sm``: stored before the SMSC is answered. It carries no id
    of the message, so a redelivery (after an answer lost) is stored twice, and a repeated stop word
    changes nothing."""
    async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await receive_inbound(conn, settings, provider, phone, text, received_at)
