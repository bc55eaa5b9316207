"""A personalised mailing through the delivery engine (in this process, against the fake provider over
HTTP): each client gets its own text, rendered at its turn, each message stores its own parts (checked
against smsutil), the rate budget is asked for those parts, and parts_sent is their exact sum."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import psycopg
import smsutil

from notification.config import Settings
from notification.delivery.batch import TEXT_NOW_PERSONALISED
from notification.delivery.planning import plan_mailing
from notification.dev.fake_provider import RunningFakeProvider
from notification.stats.counters import verify_counters
from tests.api import CLIENTS, MAILINGS, Api, create_client, create_mailing, mailing_stats
from tests.delivery.observe import add_pending_messages, engine_in_process, rows
from tests.waiting import wait_for

TEXT = '{{ name | default("клиент") }}, your order {{ order }} is ready for pickup at our shop on Main Street.'
LONG_CYRILLIC = "Александра-Виктория Константиновна Преображенская-Долгорукова"


async def test_each_client_gets_its_own_text_and_parts(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider
) -> None:
    latin = await create_client(client, attributes={"name": "Anna", "order": "A-1"})
    cyrillic = await create_client(client, attributes={"name": LONG_CYRILLIC, "order": "Б-2"})
    nameless = await create_client(client, attributes={"order": "C-3"})
    changing = await create_client(client, attributes={"name": "Bob", "order": "D-4"})
    mailing = await create_mailing(client, text=TEXT)
    conninfo = settings.psycopg_conninfo
    ids = await add_pending_messages(conninfo, mailing["id"])
    # Planned with Bob; renamed before its turn: the message carries the name it has then.
    patched = await client.patch(f"{CLIENTS}/{changing['id']}", json={"attributes": {"name": "Robert", "order": "D-4"}})
    assert patched.status_code == 200, patched.text

    asked: list[int] = []
    async with engine_in_process(settings, fake_provider.base_url) as (delivery, conn):
        budget = delivery.lanes["default"].budget
        admit = budget.admit

        async def counting_admit(parts: int) -> bool:
            asked.append(parts)
            return await admit(parts)

        budget.admit = counting_admit  # type: ignore[method-assign]
        # A new mailing's first plan is version 1: this batch stands for one of its send jobs.
        report = await delivery.send_batch(conn, mailing["id"], 1, ids)
    assert report.sent == 4, report

    texts = {a.msg_id: a.text for a in fake_provider.arrivals()}
    by_client = dict(
        await rows(conninfo, "SELECT client_id, id FROM messages WHERE mailing_id = %(m)s", {"m": mailing["id"]})
    )
    expected = {
        latin["id"]: "Anna, your order A-1 is ready for pickup at our shop on Main Street.",
        cyrillic["id"]: f"{LONG_CYRILLIC}, your order Б-2 is ready for pickup at our shop on Main Street.",
        nameless["id"]: "клиент, your order C-3 is ready for pickup at our shop on Main Street.",
        changing["id"]: "Robert, your order D-4 is ready for pickup at our shop on Main Street.",
    }
    assert {client_id: texts[message_id] for client_id, message_id in by_client.items()} == expected

    stored = await rows(
        conninfo, "SELECT client_id, encoding, parts FROM messages WHERE mailing_id = %(m)s", {"m": mailing["id"]}
    )
    oracle = {c: smsutil.split(t) for c, t in expected.items()}
    for client_id, encoding, parts in stored:
        split = oracle[client_id]
        assert parts == len(split.parts), (client_id, expected[client_id])
        assert encoding == ("GSM-7" if split.encoding == "gsm0338" else "UCS-2")
    # Latin fits one GSM-7 part; the Cyrillic name makes UCS-2 of two parts: the counts differ per client.
    assert {row[0]: row[2] for row in stored}[latin["id"]] == 1
    assert {row[0]: row[2] for row in stored}[cyrillic["id"]] == 2
    assert sorted(asked) == sorted(row[2] for row in stored)

    stats = await mailing_stats(client, mailing["id"])
    assert stats["parts_sent"] == sum(row[2] for row in stored)
    listed = await client.get("/api/v1/mailings/stats")
    assert (
        next(i for i in listed.json()["items"] if i["mailing_id"] == mailing["id"])["parts_sent"] == stats["parts_sent"]
    )
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as check:
        assert (await verify_counters(check)).ok


async def test_planning_an_attribute_filter_or_audience_reaches_the_matching_clients(
    client: Api, settings: Settings
) -> None:
    # Tags given: the factory would draw one at random, vip among them.
    kazan = await create_client(client, tag="", attributes={"city": "Kazan", "name": "A"})
    kazan_vip = await create_client(client, tag="vip", attributes={"city": "Kazan"})
    await create_client(client, tag="vip", attributes={"city": "Moscow"})
    await create_client(client, tag="")
    by_filter = await create_mailing(client, filter={"attributes": {"city": "Kazan"}})
    audience = await client.post(
        "/api/v1/audiences", json={"name": "Kazan VIP", "filter": {"tags": ["vip"], "attributes": {"city": "Kazan"}}}
    )
    assert audience.status_code == 201, audience.text
    by_audience = await create_mailing(client, audience_id=audience.json()["id"])

    conninfo = settings.psycopg_conninfo
    for mailing in (by_filter, by_audience):
        async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
            await plan_mailing(conn, mailing["id"], 1, 100)
    planned = await rows(
        conninfo, "SELECT mailing_id, array_agg(client_id ORDER BY client_id) FROM messages GROUP BY 1 ORDER BY 1"
    )
    assert planned == [
        (by_filter["id"], sorted([kazan["id"], kazan_vip["id"]])),
        (by_audience["id"], [kazan_vip["id"]]),
    ]


async def test_a_text_made_personalised_mid_batch_is_never_sent_without_the_attributes(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider
) -> None:
    # A plain text's claim reads no attributes; once the batch learns of the new text, what it has
    # not sent yet goes back to be claimed again, with them.
    names = {(await create_client(client, attributes={"name": f"N{i}"}))["id"]: f"N{i}" for i in range(12)}
    mailing = await create_mailing(client, text="Hello")
    conninfo = settings.psycopg_conninfo
    ids = await add_pending_messages(conninfo, mailing["id"])
    fake_provider.set_options(latency_ms=150)
    one_at_a_time = replace(settings, provider_concurrency=1)
    async with engine_in_process(one_at_a_time, fake_provider.base_url) as (delivery, conn):
        batch = asyncio.create_task(delivery.send_batch(conn, mailing["id"], 1, ids))

        async def arrived() -> int:
            return len(fake_provider.arrivals())

        await wait_for(arrived, lambda n: n >= 1, timeout_s=10, interval_s=0.02)
        patched = await client.patch(f"{MAILINGS}/{mailing['id']}", json={"text": "{{ name }}, hello"})
        assert patched.status_code == 200, patched.text
        first = await asyncio.wait_for(batch, 30)
        assert first.stopped == TEXT_NOW_PERSONALISED, first
        assert 0 < first.sent < len(ids), first
        assert first.unsent > 0, first
        pending = [int(r[0]) for r in await rows(conninfo, "SELECT id FROM messages WHERE status = 'pending'")]
        assert len(pending) == first.unsent
        second = await delivery.send_batch(conn, mailing["id"], 1, pending)
    assert second.sent == len(pending), second

    by_message = dict(
        await rows(conninfo, "SELECT id, client_id FROM messages WHERE mailing_id = %(m)s", {"m": mailing["id"]})
    )
    texts = {a.msg_id: a.text for a in fake_provider.arrivals()}
    assert sorted(texts) == sorted(ids)
    for message_id, text in texts.items():
        expected = "Hello" if message_id not in pending else f"{names[by_message[message_id]]}, hello"
        assert text == expected, (message_id, text)
