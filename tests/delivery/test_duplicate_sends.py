"""A message is recorded ``sent`` once, and its ``sent_at`` is the first acceptance, even when two batches hold
it: twin send jobs running at once, or a lease that ran out while the provider held the request (the worker
could not renew it) so that another batch claimed and sent the message again. A trigger logs every write of
``sent`` (tests/sent_log.py); the fake provider logs every request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg
from procrastinate import App
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.dev.fake_provider import Arrival, RunningFakeProvider
from notification.jobs import SEND_TASK, create_connector
from tests.api import Api, add_clients, create_mailing, database_now
from tests.delivery.observe import add_mailing, add_pending_messages, insert_clients, jobs_left, rows, wait_for_log
from tests.either_provider import SendingProvider
from tests.sent_log import record_sends, sends_recorded
from tests.waiting import wait_for
from tests.workers import WorkerProcess

LEASE = dt.timedelta(seconds=2)


async def _defer_batch(settings: Settings, mailing_id: int, message_ids: list[int]) -> None:
    """A send job, deferred by name as the planning would."""
    await _defer_batches(settings, mailing_id, [message_ids])


async def _defer_batches(settings: Settings, mailing_id: int, batches: list[list[int]]) -> None:
    """Send jobs, deferred by name as the planning would, through one connection pool."""
    job_queue = App(connector=create_connector(settings, max_size=1))
    async with job_queue.open_async():
        for message_ids in batches:
            await job_queue.configure_task(SEND_TASK).defer_async(
                mailing_id=mailing_id, plan_version=1, message_ids=message_ids
            )


async def _sent_ats(conninfo: str, mailing_id: int) -> dict[int, dt.datetime | None]:
    found = await rows(
        conninfo, "SELECT id, sent_at FROM messages WHERE mailing_id = %(id)s AND status = 'sent'", {"id": mailing_id}
    )
    return dict(found)


async def test_twin_batches_running_at_once_send_and_record_each_message_once(
    settings: Settings,
    db: AsyncSession,
    sending_provider: SendingProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    conninfo = settings.psycopg_conninfo
    await insert_clients(conninfo, 200)
    await record_sends(db)
    mailing_id = await add_mailing(conninfo, start_at="now() - interval '1 minute'", end_at="now() + interval '1 hour'")
    ids = await add_pending_messages(conninfo, mailing_id)
    await sending_provider.know(conninfo, mailing_id)
    # Two batches of 100, each deferred twice: four jobs on the same ids, run at once by one worker.
    await _defer_batches(settings, mailing_id, [ids[:100], ids[:100], ids[100:], ids[100:]])
    sending_provider.set_latency(300)
    worker = start_worker(WORKER_CONCURRENCY="4", PROVIDER_CONCURRENCY="50")

    await wait_for(lambda: _sent_ats(conninfo, mailing_id), lambda sent: len(sent) == 200, timeout_s=30)
    await wait_for(lambda: jobs_left(conninfo, SEND_TASK), lambda n: n == 0, timeout_s=30)
    batches = [line for line in worker.log_lines() if '"event": "batch done"' in line]
    assert sum('"claimed": 0' not in line for line in batches) >= 2
    assert len(batches) >= 4, "each twin ran"
    assert sending_provider.requests_per_message() == dict.fromkeys(ids, 1)
    assert sending_provider.accepted_per_message() == dict.fromkeys(ids, 1)
    assert await sends_recorded(db) == dict.fromkeys(ids, 1)


async def test_a_lease_running_out_mid_request_never_records_a_second_send(
    settings: Settings,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    conninfo = settings.psycopg_conninfo
    await insert_clients(conninfo, 10)
    await record_sends(db)
    mailing_id = await add_mailing(conninfo, start_at="now() - interval '1 minute'", end_at="now() + interval '1 hour'")
    ids = await add_pending_messages(conninfo, mailing_id)
    # The provider holds every request 6 s, and the worker waits as long as it takes.
    fake_provider.set_options(hang_rate=1.0, hang_s=6)
    worker = start_worker(SEND_LEASE_S=str(LEASE.total_seconds()), PROVIDER_TIMEOUT_S="30")
    await worker.ready()
    await _defer_batch(settings, mailing_id, ids)
    await wait_for(lambda: _arrived(fake_provider), lambda n: n == 10, timeout_s=30)
    claimed_at = await database_now(conninfo)

    # While the worker renews its leases (every 0.5 s here), a twin deferred after the first lease would
    # have run out claims nothing.
    await wait_for(lambda: database_now(conninfo), lambda now: now > claimed_at + LEASE, timeout_s=10)
    assert await _live_leases(conninfo, ids) == 10
    await _defer_batch(settings, mailing_id, ids)
    await wait_for_log(worker, '"claimed": 0', timeout_s=10)
    assert await _arrived(fake_provider) == 10

    # The worker cannot renew its leases while another transaction holds the rows (the renewal skips
    # locked rows, as it would a slow or unreachable database make it miss them): they run out mid-request.
    async with await psycopg.AsyncConnection.connect(conninfo) as blocker:
        await blocker.execute("SELECT id FROM messages WHERE id = ANY(%(ids)s) FOR UPDATE", {"ids": ids})
        await wait_for(lambda: _live_leases(conninfo, ids), lambda n: n == 0, timeout_s=10)
        await blocker.rollback()
    # A twin batch finds the messages pending and unleased, and sends them again.
    await _defer_batch(settings, mailing_id, ids)
    await wait_for(lambda: _arrived(fake_provider), lambda n: n == 20, timeout_s=30)

    # Both answers come back 200: the first is recorded, the second changes nothing.
    await wait_for(lambda: _sent_ats(conninfo, mailing_id), lambda sent: len(sent) == 10, timeout_s=30)
    await wait_for(lambda: jobs_left(conninfo, SEND_TASK), lambda n: n == 0, timeout_s=30)
    # The first batch and the twin after the leases ran out each claimed all ten; the twin in between none.
    claims = [line for line in worker.log_lines() if '"event": "batch done"' in line]
    assert sum('"claimed": 10' in line for line in claims) == 2, claims
    arrivals = fake_provider.arrivals()
    assert all(a.accepted for a in arrivals)
    first: dict[int, Arrival] = {}
    second: dict[int, Arrival] = {}
    for arrival in arrivals:
        (second if arrival.msg_id in first else first)[arrival.msg_id] = arrival
    assert set(first) == set(second) == set(ids)
    assert await sends_recorded(db) == dict.fromkeys(ids, 1)
    for message_id, sent_at in (await _sent_ats(conninfo, mailing_id)).items():
        assert sent_at is not None
        # The first acceptance, not the second: the second answer came after the recorded time.
        assert first[message_id].answered_at is not None
        assert second[message_id].answered_at is not None
        assert sent_at < second[message_id].answered_at
    log = "\n".join(worker.log_lines())
    assert log.count('"event": "batch done"') >= 3


async def _arrived(fake_provider: RunningFakeProvider) -> int:
    return len(fake_provider.arrivals())


async def _live_leases(conninfo: str, ids: list[int]) -> int:
    found = await rows(
        conninfo, "SELECT count(*) FROM messages WHERE id = ANY(%(ids)s) AND leased_until > now()", {"ids": ids}
    )
    return int(found[0][0])


async def test_an_acceptance_arriving_after_its_message_was_cancelled_is_recorded_sent(
    client: Api,
    settings: Settings,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """'sent' wins over a cancellation that landed while the request was in flight: the provider did accept
    the message, and the statistics must say so."""
    conninfo = settings.psycopg_conninfo
    clients = await add_clients(client, 3)
    await record_sends(db)
    # The deletion lands in the 1.5 s the provider takes to answer.
    fake_provider.set_options(latency_ms=1500)
    start_worker(PROVIDER_TIMEOUT_S="10")
    mailing = await create_mailing(client)
    await wait_for(lambda: _arrived(fake_provider), lambda n: n == 3, timeout_s=30)

    gone = clients[0]["id"]
    (message_id,) = [m for (m,) in await rows(conninfo, "SELECT id FROM messages WHERE client_id = %(c)s", {"c": gone})]
    assert (await client.delete(f"/api/v1/clients/{gone}")).status_code == 204
    assert await rows(conninfo, "SELECT status FROM messages WHERE id = %(id)s", {"id": message_id}) == [("cancelled",)]

    sent = await wait_for(lambda: _sent_ats(conninfo, mailing["id"]), lambda s: len(s) == 3, timeout_s=30)
    assert message_id in sent
    assert await rows(conninfo, "SELECT client_id FROM messages WHERE id = %(id)s", {"id": message_id}) == [(None,)]
    assert (await sends_recorded(db))[message_id] == 1
    assert fake_provider.received().accepted == dict.fromkeys(sent, 1)
