"""Inbound messages as the service function takes them (what an SMSC's deliver_sm and a provider's HTTP
callback both come down to): stored once per provider's id; a stop word, matched on the whole trimmed
text in any case, suppresses the sender and defers a reply when one is set; the rest are listed."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import psycopg
import pytest

from notification.config import Settings
from notification.inbound.service import directory_phone, receive_inbound
from tests.api import Api
from tests.delivery.observe import rows

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "stop"),
    [
        ("STOP", True),
        ("  stop\n", True),
        ("Стоп", True),
        ("отписаться", True),
        ("UnSubscribe", True),
        ("stop please", False),
        ("STOP!", False),
        ("", False),
        ("Hello", False),
    ],
)
async def test_a_stop_word_is_the_whole_trimmed_text_in_any_case(settings: Settings, text: str, stop: bool) -> None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        received = await receive_inbound(conn, settings, "smsc", "+79161234567", text, NOW)
    assert (received.stop_word, received.suppressed) == (stop, stop)
    listed = await rows(settings.psycopg_conninfo, "SELECT phone, reason, created_by FROM suppressions")
    assert listed == ([("79161234567", "stop_word", "inbound:smsc")] if stop else [])


def test_a_senders_address_is_read_as_the_directory_writes_phones() -> None:
    assert [directory_phone(a) for a in ("+79161234567", "89161234567", "9161234567", "79161234567")] == [
        "79161234567"
    ] * 4
    assert [directory_phone(a) for a in ("SHOP", "+4915112345678", "")] == [None, None, None]


async def test_a_message_handed_over_twice_is_stored_once_and_listed_in_the_api(
    settings: Settings, client: Api
) -> None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        first = await receive_inbound(conn, settings, "http-a", "79161234567", "When is the sale?", NOW, "p-1")
        again = await receive_inbound(conn, settings, "http-a", "79161234567", "When is the sale?", NOW, "p-1")
        other = await receive_inbound(conn, settings, "http-b", "79161234567", "When is the sale?", NOW, "p-1")
    assert (first.id is None, again.id is None, other.id is None) == (False, True, False)
    listed = (await client.get("/api/v1/inbound")).json()
    assert [(m["provider"], m["text"], m["stop_word"]) for m in listed["items"]] == [
        ("http-b", "When is the sale?", False),
        ("http-a", "When is the sale?", False),
    ]
    only_stops = (await client.get("/api/v1/inbound", params={"stop_word": "true"})).json()
    assert only_stops["total"] == 0


async def test_a_reply_is_a_job_deferred_with_the_stop_word_when_one_is_set(settings: Settings) -> None:
    replying = replace(settings, stop_reply="You will get no more messages from us.")
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await receive_inbound(conn, settings, "smsc", "79161234567", "STOP", NOW)
        await receive_inbound(conn, replying, "smsc", "79161234568", "STOP", NOW)
        await receive_inbound(conn, replying, "smsc", "79161234569", "Hello", NOW)
    jobs = await rows(settings.psycopg_conninfo, "SELECT task_name, args FROM procrastinate_jobs")
    assert [(name, args["phone"], args["provider"]) for name, args in jobs] == [
        ("inbound:send_stop_reply", "79161234568", "smsc")
    ]
