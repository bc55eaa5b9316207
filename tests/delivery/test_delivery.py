from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.dev.fake_provider import FakeProviderOptions, RunningFakeProvider, serve_fake_provider
from notification.dev.fake_smsc import FakeSmscOptions, RunningFakeSmsc, serve_fake_smsc
from notification.provider.smpp_wire import ESME_RSYSERR
from tests.api import Api, add_clients, create_mailing, database_now, mailing_stats, utc_now
from tests.factories import MailingFactory
from tests.provider_record import accepted_counts, arrivals, message_ids_of
from tests.sent_log import record_sends, sends_recorded
from tests.waiting import wait_for
from tests.workers import WorkerProcess


async def test_due_mailing_is_delivered_once_to_every_matching_client(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    matching = await add_clients(client, 30, operator_code="916", tag="vip")
    await add_clients(client, 10, operator_code="903", tag="vip")
    start_worker()
    mailing = await create_mailing(client, filter={"operator_codes": ["916"], "tags": ["vip"]})

    stats = await wait_for(
        lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 30, timeout_s=30
    )
    assert stats["total"] == 30
    assert stats["by_status"] == {"pending": 0, "sent": 30, "failed": 0, "expired": 0, "cancelled": 0}
    received = fake_provider.received()
    message_ids = {m["id"] for m in stats["messages"]["items"]}
    assert set(received.accepted) == message_ids
    assert all(count == 1 for count in received.requests.values())
    phones = {c["id"]: int(c["phone"]) for c in matching}
    for message in stats["messages"]["items"]:
        record = fake_provider.message(message["id"])
        assert record is not None
        assert record.last_body == {"id": message["id"], "phone": phones[message["client_id"]], "text": "Winter sale"}


async def _send_jobs_left(db: AsyncSession) -> int:
    result = await db.execute(
        text(
            "SELECT count(*) FROM procrastinate_jobs"
            " WHERE task_name = 'delivery:send_messages' AND status IN ('todo', 'doing')"
        )
    )
    return int(result.scalar_one())


async def test_future_mailing_starts_by_itself_at_start_at(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 5)
    await start_worker().ready()
    # On the database's clock, which the planning job's schedule and every timestamp below are read on: the
    # test holds however long the requests take, nothing is compared with the test's own clock.
    start_at = await database_now(db) + dt.timedelta(seconds=3)
    mailing = await create_mailing(client, start_at=start_at.isoformat())
    planning = await db.execute(
        text("SELECT scheduled_at FROM procrastinate_jobs WHERE task_name = 'delivery:plan_mailing'")
    )
    assert planning.scalars().all() == [start_at]
    await db.rollback()

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 5)
    assert stats["total"] == 5
    # Nothing was planned, let alone sent, before start_at.
    planned_at = await db.scalar(text("SELECT planned_at FROM mailings WHERE id = :id"), {"id": mailing["id"]})
    created = await db.execute(text("SELECT created_at FROM messages WHERE mailing_id = :id"), {"id": mailing["id"]})
    assert planned_at >= start_at
    assert all(created_at >= start_at for created_at in created.scalars())
    await db.rollback()
    for message in stats["messages"]["items"]:
        assert dt.datetime.fromisoformat(message["sent_at"]) >= start_at
    assert fake_provider.received().total_accepted == 5


class DownProvider:
    """The provider a test sends to, HTTP (the fake provider answering 503) or SMPP (a stored
    provider whose fake SMSC answers every submit ESME_RSYSERR): down until ``back`` is called."""

    def __init__(self, kind: str, fake_provider: RunningFakeProvider, smsc: RunningFakeSmsc | None) -> None:
        self.kind, self._http, self._smsc = kind, fake_provider, smsc

    def back(self) -> None:
        if self._smsc is None:
            self._http.set_options(down=False)
        else:
            self._smsc.set_options(status_rates={})

    def tried(self) -> int:
        if self._smsc is None:
            return self._http.received().total_requests
        return len(self._smsc.submits())

    def accepted(self) -> int:
        if self._smsc is None:
            return self._http.received().total_accepted
        return sum(1 for s in self._smsc.submits() if s.message_id is not None)


@pytest.fixture(params=["http", "smpp"])
async def down_provider(
    request: pytest.FixtureRequest, client: Api, fake_provider: RunningFakeProvider
) -> AsyncIterator[DownProvider]:
    if request.param == "http":
        fake_provider.set_options(down=True)
        yield DownProvider("http", fake_provider, None)
        return
    async with serve_fake_smsc(FakeSmscOptions(status_rates={ESME_RSYSERR: 1.0})) as smsc:
        settings = {"host": "127.0.0.1", "port": smsc.port, "system_id": "notification"}
        stored = await client.post("/api/v1/providers", json={"name": "smsc", "kind": "smpp", "settings": settings})
        assert stored.status_code == 201, stored.text
        yield DownProvider("smpp", fake_provider, smsc)


async def test_provider_down_until_after_end_at_leaves_every_message_expired(
    client: Api, db: AsyncSession, down_provider: DownProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 20)
    await start_worker().ready()
    # Measured once the worker is up, on the clock end_at is checked against: the 8 s are all the worker's.
    end_at = await database_now(db) + dt.timedelta(seconds=8)
    mailing = await create_mailing(client, end_at=end_at.isoformat())

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["expired"] == 20)
    assert stats["by_status"] == {"pending": 0, "sent": 0, "failed": 0, "expired": 20, "cancelled": 0}
    assert down_provider.tried() > 0, "the provider was tried while down"
    assert down_provider.accepted() == 0
    assert all(m["last_error"] for m in stats["messages"]["items"])
    # With the provider back there is nothing left that could still send.
    down_provider.back()
    # A batch held by the open circuit breaker finishes once it sees the end has passed.
    await wait_for(lambda: _send_jobs_left(db), lambda n: n == 0)
    assert down_provider.accepted() == 0


async def test_transient_errors_are_retried_until_sent(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 40)
    fake_provider.set_options(error_rate=0.3, malformed_rate=0.1, rate_limit_rate=0.1, retry_after_s=0.5, seed=7)
    start_worker()
    mailing = await create_mailing(client)

    stats = await wait_for(
        lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 40, timeout_s=60
    )
    messages = stats["messages"]["items"]
    assert any(m["attempts"] > 1 for m in messages), "the fault rates must have forced some retries"
    received = fake_provider.received()
    assert all(received.accepted[m["id"]] == 1 for m in messages)
    assert sum(received.requests.values()) == sum(m["attempts"] for m in messages)


async def test_permanent_rejections_fail_without_retry(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 10)
    fake_provider.set_options(reject_rate=1.0)
    start_worker()
    mailing = await create_mailing(client)

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["failed"] == 10)
    for message in stats["messages"]["items"]:
        assert message["attempts"] == 1
        assert message["last_error"].startswith("HTTP 400")
    assert fake_provider.received().total_requests == 10


async def test_patch_adds_new_clients_and_never_sends_twice(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 10, tag="vip")
    await add_clients(client, 5, tag="new")
    start_worker()
    mailing = await create_mailing(client, filter={"operator_codes": [], "tags": ["vip"]})
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 10)

    response = await client.patch(
        f"/api/v1/mailings/{mailing['id']}", json={"text": "Second wave", "filter": {"tags": ["vip", "new"]}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["filter"] == {"operator_codes": [], "tags": ["new", "vip"], "attributes": {}}

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 15)
    assert stats["total"] == 15
    received = fake_provider.received()
    assert received.total_requests == 15
    assert all(count == 1 for count in received.requests.values())
    texts = {fake_provider.message(m["id"]).last_body["text"] for m in stats["messages"]["items"]}  # type: ignore[union-attr]
    assert texts == {"Winter sale", "Second wave"}


async def test_patch_cancels_pending_messages_of_clients_no_longer_matching(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 6, tag="vip")
    await add_clients(client, 4, tag="new")
    # Unreachable provider: every message stays pending, retrying, until the plan changes.
    fake_provider.set_options(down=True)
    start_worker()
    mailing = await create_mailing(client)
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["total"] == 10)

    response = await client.patch(f"/api/v1/mailings/{mailing['id']}", json={"filter": {"tags": ["vip"]}})
    assert response.status_code == 200
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["cancelled"] == 4)
    fake_provider.set_options(down=False)
    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 6)
    assert stats["by_status"] == {"pending": 0, "sent": 6, "failed": 0, "expired": 0, "cancelled": 4}
    cancelled = {m["id"] for m in stats["messages"]["items"] if m["status"] == "cancelled"}
    assert not cancelled & set(fake_provider.received().accepted)


async def test_delete_mid_mailing_stops_it_without_a_second_send(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 120)
    fake_provider.set_options(latency_ms=100)
    start_worker(SEND_BATCH_SIZE="20", PROVIDER_CONCURRENCY="10", WORKER_CONCURRENCY="2")
    mailing = await create_mailing(client)
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] >= 10)

    response = await client.delete(f"/api/v1/mailings/{mailing['id']}")
    assert response.status_code == 204
    assert (await client.get(f"/api/v1/mailings/{mailing['id']}")).status_code == 404
    await wait_for(lambda: _send_jobs_left(db), lambda left: left == 0)
    received = fake_provider.received()
    assert received.total_requests < 120, "the deletion must have stopped the mailing"
    assert all(count == 1 for count in received.requests.values())


async def test_reconciler_plans_a_due_mailing_whose_planning_was_never_enqueued(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 3)
    # As if the API had died between its commit and the defer.
    mailing = MailingFactory.build()
    db.add(mailing)
    await db.commit()
    start_worker()
    stats = await wait_for(
        lambda: mailing_stats(client, mailing.id), lambda s: s["by_status"]["sent"] == 3, timeout_s=40
    )
    assert stats["total"] == 3


async def test_worker_killed_mid_mailing_loses_nothing_and_records_no_second_send(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 200)
    await record_sends(db)
    fake_provider.set_options(latency_ms=150)
    tuning = {
        "SEND_BATCH_SIZE": "25",
        "PROVIDER_CONCURRENCY": "20",
        "WORKER_CONCURRENCY": "4",
        "RESULT_FLUSH_SIZE": "5",
    }
    first = start_worker(**tuning)
    mailing = await create_mailing(client)
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: 0 < s["by_status"]["sent"] < 150)

    first.kill()
    # Whatever the dead worker recorded is final: none of it may reach the provider again.
    recorded_before_kill = await message_ids_of(db, mailing["id"], "sent")
    killed_at = await mailing_stats(client, mailing["id"])
    assert killed_at["by_status"]["pending"] > 0, "the kill must land mid-mailing"
    # The second worker sends to a provider of its own, so each request is known to come from one worker or
    # the other, whenever the fake got round to it.
    async with serve_fake_provider(FakeProviderOptions(latency_ms=150)) as second_provider:
        start_worker(PROVIDER_URL=second_provider.base_url, **tuning)
        stats = await wait_for(
            lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 200, timeout_s=90
        )
        ids = {m["id"] for m in stats["messages"]["items"]}
        seen_by_first = await arrivals(fake_provider, ids)
        seen_by_second = await arrivals(second_provider, ids)

    assert stats["by_status"]["pending"] == 0
    # Recorded sent exactly once each, and only after the provider accepted the message.
    assert await sends_recorded(db) == dict.fromkeys(ids, 1)
    accepted_first, accepted_second = accepted_counts(seen_by_first), accepted_counts(seen_by_second)
    # Each worker, in its own lifetime, has a message accepted at most once.
    assert max(accepted_first.values()) == 1
    assert max(accepted_second.values()) == 1
    accepted = {i for i, n in accepted_first.items() if n} | {i for i, n in accepted_second.items() if n}
    assert accepted == ids == {m["id"] for m in stats["messages"]["items"] if m["status"] == "sent"}
    for message in stats["messages"]["items"]:
        # The time recorded is that of the acceptance by the worker that wrote it: the first worker's for what it
        # wrote before it died, the second's otherwise, so a message both accepted carries the second time.
        recorder = seen_by_first if message["id"] in recorded_before_kill else seen_by_second
        (exchange,) = [a for a in recorder[message["id"]] if a.accepted]
        assert exchange.answered_at is not None
        sent_at = dt.datetime.fromisoformat(message["sent_at"])
        assert exchange.answered_at <= sent_at, (message, exchange)
    # Only what was in flight at the kill, or answered but not yet written, may reach the provider twice.
    resent = {i for i in ids if seen_by_first[i] and seen_by_second[i]}
    assert not resent & recorded_before_kill
    unwritten = int(tuning["WORKER_CONCURRENCY"]) * (int(tuning["RESULT_FLUSH_SIZE"]) - 1)
    assert len(resent) <= int(tuning["PROVIDER_CONCURRENCY"]) + unwritten
    assert all(len(seen) <= 1 for seen in seen_by_first.values())
    assert all(len(seen) <= 1 for seen in seen_by_second.values())


async def test_mailing_planned_after_its_end_shows_its_audience_expired_and_sends_nothing(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 4)
    start_worker()
    mailing = await create_mailing(
        client,
        start_at=(utc_now() - dt.timedelta(hours=2)).isoformat(),
        end_at=(utc_now() - dt.timedelta(hours=1)).isoformat(),
    )
    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["expired"] == 4)
    assert stats["total"] == 4
    assert {m["last_error"] for m in stats["messages"]["items"]} == {"end_at passed before the mailing could start"}
    assert await _send_jobs_left(db) == 0
    assert fake_provider.received().total_requests == 0
