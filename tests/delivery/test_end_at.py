"""Nothing is sent at or after a mailing's ``end_at``, whatever is in flight when it passes: requests the
provider holds, messages claimed and queued in the worker, batches that start late, a worker that is down
when the end comes. The fake provider stamps each request's arrival, the database each ``sent_at``; both
read this machine's clock, the one ``end_at`` is checked against."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest

from notification.config import Settings
from notification.delivery.policy import DEADLINE_PASSED, END_MARGIN_S
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import Api, create_mailing, database_now
from tests.delivery.observe import (
    add_mailing,
    add_pending_messages,
    counts,
    engine_in_process,
    insert_clients,
    jobs_left,
    log_contains,
    rows,
)
from tests.either_provider import SendingProvider
from tests.waiting import wait_for
from tests.workers import WorkerProcess

SEND_TASK = "delivery:send_messages"
BEFORE_THE_REQUEST = "end_at passed before the request"
MAILING_LIFE_S = 5.0


async def _statuses(db: str, mailing_id: int) -> dict[int, tuple[str, dt.datetime | None, str | None, str | None]]:
    found = await rows(
        db,
        "SELECT id, status, sent_at, error_kind, last_error FROM messages WHERE mailing_id = %(id)s",
        {"id": mailing_id},
    )
    return {message_id: (status, sent_at, kind, error) for message_id, status, sent_at, kind, error in found}


async def test_a_mailing_ending_mid_batch_with_a_slow_and_hanging_provider_sends_nothing_at_or_after_end_at(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 800)
    # 40 requests in flight answered in 300-700 ms, one in twenty held for 8 s: when end_at passes, the
    # provider holds requests, and hundreds of claimed messages wait in the worker for a free slot. The
    # provider timeout is far longer than the mailing: only end_at may cut the held requests short.
    fake_provider.set_options(latency_ms=300, latency_jitter_ms=400, hang_rate=0.05, hang_s=8, seed=17)
    worker = start_worker(PROVIDER_CONCURRENCY="40", SEND_BATCH_SIZE="200", PROVIDER_TIMEOUT_S="30")
    await worker.ready()
    end_at = await database_now(db) + dt.timedelta(seconds=MAILING_LIFE_S)
    mailing = await create_mailing(client, end_at=end_at.isoformat())

    # Everything is settled soon after end_at: the held requests were given up at the end, not after 30 s.
    settled = await wait_for(
        lambda: counts(db, mailing["id"]),
        lambda c: c["pending"] == 0 and sum(c.values()) == 800,
        timeout_s=MAILING_LIFE_S + 15,
    )
    settled_after_end_s = time.time() - end_at.timestamp()
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=10)
    # Read again once every batch is done: one may still be writing answers received before the end.
    settled = await counts(db, mailing["id"])
    # Hung requests are answered by the fake 8 s after they arrived, whatever the worker did meanwhile.
    await wait_for(lambda: _answered_by_fake(fake_provider), lambda answered: answered, timeout_s=15, interval_s=0.2)
    arrivals = fake_provider.arrivals()
    statuses = await _statuses(db, mailing["id"])

    late = [a for a in arrivals if a.arrived_at >= end_at]
    last_arrival_s = max(a.arrived_at for a in arrivals) - end_at
    print(
        f"\nend_at mid-batch: {settled['sent']} sent, {settled['expired']} expired; the last request arrived"
        f" {-last_arrival_s.total_seconds():.2f} s before end_at; all settled {settled_after_end_s:.1f} s after it"
    )
    assert not late, f"requests arrived at or after end_at: {late[:3]}"
    sent_ats = {i: sent_at for i, (status, sent_at, _, _) in statuses.items() if status == "sent"}
    assert sent_ats, "the mailing must have sent before its end"
    sent_late = {i: sent_at for i, sent_at in sent_ats.items() if sent_at is None or sent_at >= end_at}
    assert not sent_late, f"recorded sent at or after end_at {end_at}: {sent_late}"
    assert settled["sent"] == len(sent_ats)
    assert settled["sent"] + settled["expired"] == 800

    # The provider held requests across end_at: the worker gave them up before it, and did not record
    # them sent when the provider (too late) said yes.
    held_across = {a.msg_id for a in arrivals if a.answered_at is not None and a.answered_at >= end_at}
    assert held_across, "some requests must have been in flight when end_at passed"
    assert {statuses[i][0] for i in held_across} == {"expired"}
    assert {statuses[i][2] for i in held_across} == {"timeout"}
    # Messages claimed before end_at and still queued then never reached the provider: the check right
    # before the request stopped them.
    requested = {a.msg_id for a in arrivals}
    stopped_before = {i for i, (_, _, _, error) in statuses.items() if error == BEFORE_THE_REQUEST}
    assert stopped_before, "claimed messages must have been waiting for a slot when the end came"
    assert not stopped_before & requested
    assert all(statuses[i][0] == "expired" for i in stopped_before)
    assert settled_after_end_s < 5


async def _answered_by_fake(fake_provider: RunningFakeProvider) -> bool:
    return all(a.answered_at is not None for a in fake_provider.arrivals())


ATTEMPTS_WITHIN_THE_MARGIN = 5


async def test_a_batch_claimed_at_or_near_end_at_expires_its_messages_without_a_request(
    settings: Settings, sending_provider: SendingProvider
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 30)
    ended = await add_mailing(db, start_at="now() - interval '1 hour'", end_at="now() - interval '1 second'")
    ended_ids = await add_pending_messages(db, ended)
    async with engine_in_process(settings, sending_provider.http.base_url) as (delivery, conn):
        too_late = await delivery.send_batch(conn, ended, 1, ended_ids)
        # Within the margin: no request may start any more, though end_at is still ahead. On a loaded machine
        # end_at may pass before the batch is done, and then this would be the case above: such a run proves
        # nothing, and a fresh mailing is tried.
        for _ in range(ATTEMPTS_WITHIN_THE_MARGIN):
            ending = await add_mailing(
                db, start_at="now() - interval '1 hour'", end_at=f"now() + interval '{END_MARGIN_S / 2} seconds'"
            )
            ending_ids = await add_pending_messages(db, ending)
            nearly = await delivery.send_batch(conn, ending, 1, ending_ids)
            [(still_ahead,)] = await rows(db, "SELECT end_at > now() FROM mailings WHERE id = %(id)s", {"id": ending})
            if still_ahead:
                break
        else:
            pytest.fail(f"end_at passed during each of {ATTEMPTS_WITHIN_THE_MARGIN} batches: the machine is too slow")

    for report in (too_late, nearly):
        assert (report.skipped, report.claimed, report.expired) == ("mailing ended", 0, 30)
    assert sending_provider.total_requests() == 0
    for mailing_id in (ended, ending):
        statuses = await _statuses(db, mailing_id)
        assert {(status, kind, error) for status, _, kind, error in statuses.values()} == {
            ("expired", "deadline", DEADLINE_PASSED)
        }
        assert await rows(db, "SELECT max(attempts) FROM messages WHERE mailing_id = %(id)s", {"id": mailing_id}) == [
            (0,)
        ]


async def test_messages_of_a_mailing_that_ended_while_no_worker_ran_are_expired_by_the_periodic_sweep(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Messages no batch will ever claim (their jobs were lost) and whose mailing ended while the workers
    were down: the sweep settles them, the provider never sees them."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 50)
    mailing_id = await add_mailing(
        db, start_at="now() - interval '1 hour'", end_at="now() - interval '1 minute'", text="Too late"
    )
    message_ids = await add_pending_messages(db, mailing_id)
    await rows(
        db,
        "UPDATE messages SET attempts = 1, last_error = 'HTTP 503', error_kind = 'http_5xx' WHERE id = %(id)s"
        " RETURNING id",
        {"id": message_ids[0]},
    )

    worker = start_worker()
    await wait_for(lambda: counts(db, mailing_id), lambda c: c["expired"] == 50, timeout_s=30)
    statuses = await _statuses(db, mailing_id)
    # A message that had failed before keeps that error; the others are expired by the deadline.
    assert statuses[message_ids[0]][2:] == ("http_5xx", "HTTP 503")
    assert {statuses[i][2:] for i in message_ids[1:]} == {("deadline", DEADLINE_PASSED)}
    assert fake_provider.received().total_requests == 0
    assert await jobs_left(db, SEND_TASK) == 0
    assert log_contains(worker, '"event": "overdue messages expired"')
    assert log_contains(worker, '"count": 50')


async def test_a_worker_down_across_end_at_leaves_nothing_to_send_after_it(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Killed mid-mailing before the end, the next worker starting after it: the dead worker's batches come
    back (stalled jobs) and find the mailing over, the sweep settles the rest; no request goes out."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 300)
    fake_provider.set_options(latency_ms=1000)
    first = start_worker(PROVIDER_CONCURRENCY="20", SEND_BATCH_SIZE="50")
    await first.ready()
    end_at = await database_now(db) + dt.timedelta(seconds=MAILING_LIFE_S)
    mailing = await create_mailing(client, end_at=end_at.isoformat())
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 20, timeout_s=MAILING_LIFE_S)
    first.kill()
    killed = await counts(db, mailing["id"])
    assert killed["pending"] > 0, "the kill must leave messages to send"

    await wait_for(lambda: database_now(db), lambda now: now > end_at, timeout_s=MAILING_LIFE_S + 5)
    assert await counts(db, mailing["id"]) == killed, "nothing settles them while no worker runs"
    fake_provider.set_options(latency_ms=0)
    second = start_worker()
    final = await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    arrivals = fake_provider.arrivals()
    assert not [a for a in arrivals if a.arrived_at >= end_at]
    statuses = await _statuses(db, mailing["id"])
    assert all(
        sent_at is not None and sent_at < end_at for status, sent_at, _, _ in statuses.values() if status == "sent"
    )
    # What the dead worker had recorded stays; everything else (in flight at the kill included) expired.
    assert final == killed | {"pending": 0, "expired": killed["expired"] + killed["pending"]}
    assert log_contains(second, '"skipped": "mailing ended"') or log_contains(second, "overdue messages expired")
