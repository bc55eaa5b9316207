"""The outbox is written by the triggers in the transaction of each change, for the endpoints
that want the event, and by nothing else: no worker here, only the rows the changes leave."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.inbound.service import receive_inbound
from notification.receipts.store import MessageReceipt, store_message_receipts
from notification.webhooks.dispatch import prune
from tests.api import Api, add_clients, create_mailing
from tests.waiting import wait_for

WEBHOOKS = "/api/v1/webhooks"


async def _endpoint(client: Api, events: list[str], enabled: bool = True) -> int:
    body = {"url": "http://127.0.0.1:9/hooks", "events": events, "enabled": enabled}
    answer = await client.post(WEBHOOKS, json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def _future_mailing_with_messages(client: Api, db: AsyncSession, count: int) -> int:
    await add_clients(client, count)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    mailing = await create_mailing(
        client, start_at=start.isoformat(), end_at=(start + dt.timedelta(hours=1)).isoformat()
    )
    await db.execute(
        text("INSERT INTO messages (mailing_id, client_id) SELECT :m, id FROM clients"), {"m": mailing["id"]}
    )
    await db.commit()
    return int(mailing["id"])


async def _outbox(db: AsyncSession) -> list[Any]:
    rows = (
        await db.execute(text("SELECT endpoint_id, event_type, subject, payload FROM webhook_outbox ORDER BY id"))
    ).all()
    await db.rollback()
    return list(rows)


async def test_events_go_only_to_enabled_endpoints_that_want_them_and_only_with_a_commit(
    client: Api, db: AsyncSession
) -> None:
    await _future_mailing_with_messages(client, db, 4)
    await db.execute(text("UPDATE messages SET status = 'failed', error_kind = 'http_4xx', last_error = 'no'"))
    await db.commit()
    assert await _outbox(db) == []  # no endpoint: nothing written

    wants_failed = await _endpoint(client, ["message.failed"])
    await _endpoint(client, ["message.failed"], enabled=False)
    await db.execute(text("UPDATE messages SET status = 'pending'"))
    await db.execute(text("UPDATE messages SET status = 'sent', sent_at = now()"))
    await db.commit()
    assert await _outbox(db) == []  # sent: wanted by nobody

    await db.execute(text("UPDATE messages SET status = 'failed' WHERE id <= 2"))
    await db.rollback()
    assert await _outbox(db) == []  # a change that did not commit tells nothing

    await db.execute(text("UPDATE messages SET status = 'failed', last_error = 'HTTP 400: refused' WHERE id <= 2"))
    await db.commit()
    rows = await _outbox(db)
    assert [(r.endpoint_id, r.event_type, r.subject) for r in rows] == [
        (wants_failed, "message.failed", "message:1"),
        (wants_failed, "message.failed", "message:2"),
    ]
    data = rows[0].payload["data"]
    assert rows[0].payload["type"] == "message.failed"
    assert (data["message_id"], data["status"], data["error"], data["error_kind"]) == (
        1,
        "failed",
        "HTTP 400: refused",
        "http_4xx",
    )


async def test_a_pause_and_the_settling_of_the_last_pending_message_are_mailing_events(
    client: Api, db: AsyncSession
) -> None:
    mailing_id = await _future_mailing_with_messages(client, db, 3)
    await _endpoint(client, ["mailing.paused", "mailing.finished"])
    assert (await client.post(f"/api/v1/mailings/{mailing_id}/pause")).status_code == 200
    await db.execute(text("UPDATE messages SET status = 'sent', sent_at = now() WHERE id <= 2"))
    await db.commit()
    assert [r.event_type for r in await _outbox(db)] == ["mailing.paused"]  # one message still pending
    await db.execute(text("UPDATE messages SET status = 'cancelled' WHERE id = 3"))
    await db.commit()
    rows = await _outbox(db)
    assert [(r.event_type, r.subject) for r in rows] == [
        ("mailing.paused", f"mailing:{mailing_id}"),
        ("mailing.finished", f"mailing:{mailing_id}"),
    ]
    assert rows[0].payload["data"]["status"] == "paused"
    assert rows[0].payload["data"]["paused_at"].endswith("Z")
    assert rows[1].payload["data"]["status"] == "finished"


async def test_events_past_their_retention_are_deleted_delivered_or_not(
    client: Api, db: AsyncSession, settings: Settings
) -> None:
    endpoint_id = await _endpoint(client, ["message.sent"])
    await db.execute(
        text(
            "INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload, created_at, delivered_at)"
            " SELECT :e, 'message.sent', 'message:' || n, '{}', now() - make_interval(hours => n),"
            " CASE WHEN n % 2 = 0 THEN now() END FROM generate_series(1, 6) n"
        ),
        {"e": endpoint_id},
    )
    await db.commit()
    async with AsyncConnectionPool(settings.psycopg_conninfo, min_size=1, max_size=1, open=False) as pool:
        assert await prune(pool, retention_s=3.5 * 3600, batch=2) == 3
    assert [r.subject for r in await _outbox(db)] == ["message:1", "message:2", "message:3"]


async def test_two_transactions_settling_the_last_messages_at_once_tell_the_finish_once(
    client: Api, db: AsyncSession, settings: Settings
) -> None:
    mailing_id = await _future_mailing_with_messages(client, db, 4)
    await _endpoint(client, ["mailing.finished"])
    async with (
        await psycopg.AsyncConnection.connect(settings.psycopg_conninfo) as first,
        await psycopg.AsyncConnection.connect(settings.psycopg_conninfo) as second,
    ):
        await first.execute("UPDATE messages SET status = 'sent', sent_at = now() WHERE id <= 2")
        second_pid = second.info.backend_pid
        settling = asyncio.create_task(second.execute("UPDATE messages SET status = 'expired' WHERE id > 2"))

        async def second_state() -> str | None:
            if settling.done():
                return "done"
            found = await db.scalar(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": second_pid}
            )
            await db.rollback()
            return str(found) if found else None

        # The second's statement ends (each saw the other's messages still pending), or waits for
        # the first's lock on the mailing, and then looks again once the first has committed.
        await wait_for(second_state, lambda state: state in {"Lock", "done"}, timeout_s=10, interval_s=0.02)
        await first.commit()
        await settling
        await second.commit()
    finished = [r for r in await _outbox(db) if r.event_type == "mailing.finished"]
    assert [r.subject for r in finished] == [f"mailing:{mailing_id}"]


async def test_a_receipts_verdict_is_an_event_once_and_after_the_sent_it_implies(
    client: Api, db: AsyncSession, settings: Settings
) -> None:
    await _future_mailing_with_messages(client, db, 3)
    await db.execute(text("UPDATE messages SET status = 'expired', error_kind = 'timeout' WHERE id = 1"))
    await db.execute(text("UPDATE messages SET status = 'sent', sent_at = now() WHERE id > 1"))
    await db.commit()
    endpoint_id = await _endpoint(client, ["message.sent", "message.delivered", "message.undelivered"])
    receipts = [MessageReceipt(1, "delivered"), MessageReceipt(2, "undelivered", "E42")]
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await store_message_receipts(conn, receipts)
        # Repeated, and contradicted: a decided message tells nothing more.
        await store_message_receipts(conn, [*receipts, MessageReceipt(2, "delivered")])

    rows = await _outbox(db)
    assert [(r.endpoint_id, r.event_type, r.subject) for r in rows] == [
        (endpoint_id, "message.sent", "message:1"),  # the receipt proves the timed-out request was accepted
        (endpoint_id, "message.delivered", "message:1"),
        (endpoint_id, "message.undelivered", "message:2"),
    ]
    undelivered = rows[2].payload["data"]
    assert (undelivered["delivery_state"], undelivered["delivery_error"]) == ("undelivered", "E42")
    assert undelivered["receipt_at"].endswith("Z")
    assert rows[1].payload["data"]["delivery_state"] == "delivered"


async def test_a_message_from_a_phone_is_forwarded_with_its_text_and_a_stop_word_is_not(
    client: Api, db: AsyncSession, settings: Settings
) -> None:
    endpoint_id = await _endpoint(client, ["inbound.received"])
    at = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        question = await receive_inbound(conn, settings, "smsc", "79161234567", "When is the sale?", at, "mo-1")
        await receive_inbound(conn, settings, "smsc", "79161234568", "STOP", at, "mo-2")
        await receive_inbound(conn, settings, "smsc", "79161234567", "When is the sale?", at, "mo-1")  # a repeat

    rows = await _outbox(db)
    assert [(r.endpoint_id, r.event_type, r.subject) for r in rows] == [
        (endpoint_id, "inbound.received", f"inbound:{question.id}")
    ]
    assert rows[0].payload["data"] == {
        "inbound_id": question.id,
        "provider": "smsc",
        "phone": "79161234567",
        "text": "When is the sale?",
        "received_at": "2026-12-03T12:00:00.000000Z",
        "provider_message_id": "mo-1",
    }
