"""Webhooks end to end: real workers, the fake provider, and a real HTTP receiver on a thread of its
own. Backoffs are tens of milliseconds here instead of seconds, so that an outage of many backoff
rounds takes a second or two of the test's time."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from tests.api import Api, add_clients, create_mailing, mailing_stats
from tests.waiting import wait_for
from tests.webhook_receiver import Received, webhook_receiver
from tests.webhooks.conftest import KEY
from tests.workers import WorkerProcess

WEBHOOKS = "/api/v1/webhooks"
# A failing endpoint is tried again within 0.05-0.3 s: an outage of a second is many rounds.
FAST_WEBHOOKS = {
    "SECRET_KEY": KEY,
    "WEBHOOK_TIMEOUT_S": "2",
    "WEBHOOK_RETRY_BASE_S": "0.05",
    "WEBHOOK_RETRY_MAX_S": "0.3",
}
MESSAGE_EVENTS = ["message.sent", "message.failed", "message.expired"]
ALL_EVENTS = [*MESSAGE_EVENTS, "mailing.started", "mailing.paused", "mailing.finished"]


async def add_endpoint(client: Api, url: str, events: list[str]) -> dict[str, Any]:
    answer = await client.post(WEBHOOKS, json={"url": url, "events": events})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def by_hand(secret: str, received: Received) -> str:
    """The specification's signature, worked out without the library: HMAC-SHA256 keyed with the
    secret's base64-decoded bytes over ``{webhook-id}.{webhook-timestamp}.{body}``, in base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def events_of(received: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in received]


async def test_a_mailings_events_arrive_signed_and_whole_through_500s(
    client: Api, db: AsyncSession, start_worker: Callable[..., WorkerProcess]
) -> None:
    clients = await add_clients(client, 20)
    with webhook_receiver() as receiver:
        endpoint = await add_endpoint(client, receiver.url, ALL_EVENTS)
        receiver.fail_next = 6
        worker = start_worker(**FAST_WEBHOOKS)
        mailing = await create_mailing(client)
        await worker.ready()
        # 20 messages sent, the mailing started and finished: 22 events, each accepted once at least.
        await wait_for(lambda: _async(len({r.headers["webhook-id"] for r in receiver.accepted()})), lambda n: n >= 22)
        accepted = receiver.accepted()
        refused = [r for r in receiver.requests if r.status == 500]
    assert len(refused) == 6

    verifier = Webhook(endpoint["secret"])
    for received in accepted:
        verifier.verify(received.body, received.headers)
        assert received.headers["webhook-signature"] == by_hand(endpoint["secret"], received)
        assert received.headers["content-type"] == "application/json"
        sent_at = int(received.headers["webhook-timestamp"])
        assert abs(sent_at - time.time()) < 60
    # Each refused request was made again, with the same id, and signed again.
    assert {r.headers["webhook-id"] for r in refused} <= {r.headers["webhook-id"] for r in accepted}

    events = {e["data"].get("message_id") or f"mailing {e['type']}": e for e in events_of(accepted)}
    assert {c["id"] for c in clients} == {
        e["data"]["client_id"] for e in events.values() if e["type"] == "message.sent"
    }
    sent = next(e for e in events.values() if e["type"] == "message.sent")
    assert set(sent) == {"type", "timestamp", "data"}
    assert dt.datetime.fromisoformat(sent["timestamp"]).tzinfo is not None
    assert sent["data"]["mailing_id"] == mailing["id"]
    assert sent["data"]["status"] == "sent"
    assert sent["data"]["error"] is None
    assert sent["data"]["provider"] == "default"
    assert set(sent["data"]) == {
        "message_id",
        "mailing_id",
        "client_id",
        "status",
        "attempts",
        "error_kind",
        "error",
        "provider",
        "provider_message_id",
        "sent_at",
        "encoding",
        "parts",
        "delivery_state",
        "delivery_error",
        "receipt_at",
    }
    mailing_events = [e for e in events_of(accepted) if e["type"].startswith("mailing.")]
    assert [e["type"] for e in mailing_events][:1] == ["mailing.started"]
    assert {e["type"] for e in mailing_events} == {"mailing.started", "mailing.finished"}
    finished = next(e for e in mailing_events if e["type"] == "mailing.finished")
    assert finished["data"]["mailing_id"] == mailing["id"]
    assert finished["data"]["status"] == "finished"
    stats = await mailing_stats(client, mailing["id"])
    assert stats["by_status"]["sent"] == 20

    # The endpoint's deliveries, as the API shows them: all delivered, some after a retry.
    page = (await client.get(f"{WEBHOOKS}/{endpoint['id']}/deliveries", params={"limit": 100})).json()
    assert page["total"] == 22
    assert {item["state"] for item in page["items"]} == {"delivered"}
    assert sum(item["attempts"] - 1 for item in page["items"]) >= 6
    assert all(item["last_status"] == 200 for item in page["items"])


async def _async(value: Any) -> Any:
    return value


async def _pending_messages(client: Api, db: AsyncSession, count: int) -> list[int]:
    """Messages of a mailing due in an hour (no worker plans it meanwhile), for a test to move
    through statuses itself, each change its own transaction, as the engine's writers do."""
    await add_clients(client, count)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    mailing = await create_mailing(
        client, start_at=start.isoformat(), end_at=(start + dt.timedelta(hours=1)).isoformat()
    )
    ids = (
        await db.execute(
            text("INSERT INTO messages (mailing_id, client_id) SELECT :m, id FROM clients ORDER BY id RETURNING id"),
            {"m": mailing["id"]},
        )
    ).scalars()
    message_ids = sorted(ids)
    await db.commit()
    return message_ids


async def _move(db: AsyncSession, status: str) -> None:
    sent_at = ", sent_at = now()" if status == "sent" else ""
    await db.execute(text(f"UPDATE messages SET status = :s{sent_at}"), {"s": status})
    await db.commit()


async def test_an_endpoint_down_for_many_rounds_then_back_gets_every_event_in_order_per_message(
    client: Api, db: AsyncSession, start_worker: Callable[..., WorkerProcess]
) -> None:
    message_ids = await _pending_messages(client, db, 30)
    with webhook_receiver() as receiver:
        endpoint = await add_endpoint(client, receiver.url, MESSAGE_EVENTS)
        receiver.go_down()
        worker = start_worker(**FAST_WEBHOOKS)
        # Each message fails, is retried, then sent: two events each, in that order.
        await _move(db, "failed")
        await _move(db, "pending")
        await _move(db, "sent")
        await worker.ready()

        async def failures() -> int:
            found = await db.scalar(
                text("SELECT failures FROM webhook_endpoints WHERE id = :id"), {"id": endpoint["id"]}
            )
            await db.rollback()
            return int(found or 0)

        # Down for at least eight rounds of the endpoint's backoff, each a refused connection.
        await wait_for(failures, lambda n: n >= 8, timeout_s=15)
        assert receiver.count() == 0
        back = time.monotonic()
        # Back, and stumbling: the first attempt at half the messages' first event is refused, so
        # their second event is due while the first waits for its retry.
        receiver.refuse_first = lambda event: event["type"] == "message.failed" and event["data"]["message_id"] % 2 == 0
        receiver.come_back()
        await wait_for(lambda: _async(len({r.headers["webhook-id"] for r in receiver.accepted()})), lambda n: n >= 60)
        accepted = receiver.accepted()
        assert receiver.count() - len(accepted) == 15
    # Back within one round of the capped backoff (0.3 s) and the dispatcher's next look (1 s).
    assert accepted[0].at - back < 2.5

    first_of: dict[str, int] = {}
    for position, received in enumerate(accepted):
        first_of.setdefault(received.headers["webhook-id"], position)
    order: dict[int, list[str]] = {}
    for position, event in enumerate(events_of(accepted)):
        if first_of[accepted[position].headers["webhook-id"]] == position:
            order.setdefault(event["data"]["message_id"], []).append(event["type"])
    assert order == {message_id: ["message.failed", "message.sent"] for message_id in message_ids}
    failed_event = next(e for e in events_of(accepted) if e["type"] == "message.failed")
    assert failed_event["data"]["status"] == "failed"


async def test_an_endpoint_failing_for_too_long_is_disabled_with_an_audit_row(
    client: Api, db: AsyncSession, start_worker: Callable[..., WorkerProcess]
) -> None:
    await _pending_messages(client, db, 3)
    with webhook_receiver() as receiver:
        endpoint = await add_endpoint(client, receiver.url, MESSAGE_EVENTS)
        receiver.go_down()
        worker = start_worker(**FAST_WEBHOOKS, WEBHOOK_DISABLE_AFTER_S="1.5")
        await _move(db, "expired")
        await worker.ready()

        async def read() -> dict[str, Any]:
            answer: dict[str, Any] = (await client.get(f"{WEBHOOKS}/{endpoint['id']}")).json()
            return answer

        disabled = await wait_for(read, lambda e: not e["enabled"], timeout_s=15)
        assert disabled["disabled_reason"].startswith("every request failed since")
        assert disabled["failures"] >= 2
        rows = (
            await db.execute(
                text(
                    "SELECT actor, via, action, changes FROM audit_log WHERE entity = 'webhook' AND action = 'disable'"
                )
            )
        ).all()
        await db.rollback()
        assert len(rows) == 1
        actor, via, _, changes = rows[0]
        assert (actor, via) == ("webhook dispatcher", "worker")
        assert changes["enabled"] == {"old": True, "new": False}
        # Its events wait, undelivered, and are shown as retried.
        page = (await client.get(f"{WEBHOOKS}/{endpoint['id']}/deliveries")).json()
        assert page["total"] == 3
        assert {item["state"] for item in page["items"]} == {"retrying"}
        assert all(item["last_error"] for item in page["items"])

        # Enabled again by a person, once it is back: its failures forgotten, the waiting events delivered.
        receiver.come_back()
        body = {"url": receiver.url, "events": MESSAGE_EVENTS, "enabled": True}
        enabled = (await client.put(f"{WEBHOOKS}/{endpoint['id']}", json=body)).json()
        assert (enabled["enabled"], enabled["failures"], enabled["failing_since"]) == (True, 0, None)
        await wait_for(lambda: _async(len(receiver.accepted())), lambda n: n >= 3)


async def _send_all(client: Api, db: AsyncSession, count: int) -> tuple[float, int]:
    """How long a mailing to ``count`` clients takes to be sent, and the most dispatcher jobs seen
    running at once meanwhile (each holds one of the worker's job slots)."""
    started = time.monotonic()
    mailing = await create_mailing(client)
    dispatchers: list[int] = []

    async def probe() -> dict[str, Any]:
        running = await db.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs"
                " WHERE task_name = 'webhooks:deliver_webhooks' AND status = 'doing'"
            )
        )
        await db.rollback()
        dispatchers.append(int(running or 0))
        return await mailing_stats(client, mailing["id"], limit=1)

    await wait_for(probe, lambda s: s["by_status"]["sent"] == count, timeout_s=30, interval_s=0.05)
    return time.monotonic() - started, max(dispatchers)


async def test_sending_takes_no_longer_with_a_hanging_endpoint_subscribed_to_every_send(
    client: Api, db: AsyncSession, start_worker: Callable[..., WorkerProcess]
) -> None:
    count = 1500
    await add_clients(client, count)
    worker = start_worker(**FAST_WEBHOOKS)
    await worker.ready()
    baseline, _ = await _send_all(client, db, count)
    with webhook_receiver() as receiver:
        receiver.hang = True
        endpoint = await add_endpoint(client, receiver.url, ["message.sent"])
        # A backlog the dispatcher is busy with, its requests held unanswered, before the mailing starts.
        await db.execute(
            text(
                "INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload)"
                " SELECT :e, 'message.sent', 'message:' || n, '{}'::jsonb FROM generate_series(1, 200) n"
            ),
            {"e": endpoint["id"]},
        )
        await db.commit()
        await wait_for(lambda: _async(receiver.arrivals), lambda n: n >= 1)
        with_endpoint, dispatchers = await _send_all(client, db, count)
        # Every send told the outbox, and none of it reached the receiver, which held every request.
        events = await db.scalar(text("SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"))
        await db.rollback()
        assert events == count + 200
        assert receiver.count() == 0
    assert dispatchers <= 1
    assert with_endpoint <= baseline * 1.5 + 0.5, (baseline, with_endpoint)
