"""A worker killed behind a backlog and the provider down for a while: sending resumes, bounded
in time and in requests, and nothing is sent twice beyond what was in flight."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from notification.config import Settings
from notification.delivery.breaker import CircuitBreaker
from notification.dev.fake_provider import Arrival, RunningFakeProvider
from tests.api import Api, create_mailing
from tests.delivery.observe import (
    arrivals_of,
    counts,
    duplicate_bound,
    insert_clients,
    message_ids,
    resent,
    rows,
)
from tests.waiting import wait_for
from tests.workers import WorkerProcess

SEND_TASK = "delivery:send_messages"


DEFAULTS = Settings()
DEFAULT_RECOVERY = {
    "SEND_LEASE_S": str(DEFAULTS.send_lease_s),
    "WORKER_HEARTBEAT_S": str(DEFAULTS.worker_heartbeat_s),
    "STALLED_JOB_AFTER_S": str(DEFAULTS.stalled_job_after_s),
    "WORKER_POLL_S": str(DEFAULTS.worker_poll_s),
}


async def test_sending_of_a_killed_workers_messages_resumes_within_15_s_behind_a_backlog(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 4_000)
    # About 100 messages/s per worker: when one dies, the other has half a minute of queued
    # batches ahead of it, and recovery must not wait for that queue to drain.
    fake_provider.set_options(latency_ms=200)
    tuning = {"SEND_BATCH_SIZE": "100", "PROVIDER_CONCURRENCY": "20", "RESULT_FLUSH_SIZE": "10", **DEFAULT_RECOVERY}
    doomed = start_worker("doomed.log", **tuning)
    start_worker("survivor.log", **tuning)
    mailing = await create_mailing(client)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 300, timeout_s=30)

    doomed.kill()
    killed_at = time.time()
    started = {int(m) for m in re.findall(rf"Starting job {SEND_TASK}\[(\d+)\]", doomed.log_path.read_text())}
    running = await rows(
        db,
        "SELECT args->'message_ids' FROM procrastinate_jobs WHERE status = 'doing' AND id = ANY(%(ids)s)",
        {"ids": list(started)},
    )
    held = {i for (ids,) in running for i in ids}
    orphaned = held & await message_ids(db, mailing["id"], where="m.status = 'pending'")
    assert orphaned, "the kill must leave messages claimed by the dead worker"

    async def resumed() -> dict[int, float]:
        """When each orphaned message reached the provider again, in seconds after the kill."""
        again: dict[int, float] = {}
        for arrival in arrivals_of(fake_provider.arrivals(), orphaned, after=killed_at):
            again.setdefault(arrival.msg_id, arrival.arrived_at.timestamp() - killed_at)
        return again

    recovery_s = min((await wait_for(resumed, bool, timeout_s=30)).values())
    fake_provider.set_options(latency_ms=0)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 4_000, timeout_s=60)
    all_resent_s = max((await resumed()).values())
    received = fake_provider.received()
    assert set(received.accepted) == await message_ids(db, mailing["id"])
    assert max(received.accepted.values()) <= 2
    duplicates = resent(received)
    print(
        f"\nkill of one worker of two: sending of its {len(orphaned)} claimed messages resumed after"
        f" {recovery_s:.1f} s (all of them after {all_resent_s:.1f} s); duplicates: {duplicates}"
    )
    assert recovery_s <= 15
    assert duplicates <= duplicate_bound(20, DEFAULTS.worker_concurrency, 10)


# Ends a second before the breaker's fourth probe (1, 3, 7, 15 s after it opened): the probe finds
# the provider back. A longer outage costs one probe more per doubling of the pause, up to 30 s.
OUTAGE_S = 14.0
# The worker's watcher and event loop on a loaded two-core machine, between the probe falling due
# and its request reaching the fake.
PROBE_SLACK_S = 2.0


def probes_within(breaker: CircuitBreaker, seconds: float) -> int:
    """How many probes an open breaker sends in ``seconds`` of outage."""
    probes, at, pause = 0, 0.0, breaker.first_pause_s
    while (at := at + pause) <= seconds:
        probes += 1
        pause = min(breaker.max_pause_s, pause * 2)
    return probes


async def test_provider_outage_costs_a_bounded_number_of_requests(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 10_000)
    start_worker()
    mailing = await create_mailing(client)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 100, timeout_s=30)

    fake_provider.set_options(down=True)
    down_at = time.time()
    await asyncio.sleep(OUTAGE_S)  # the outage itself
    fake_provider.set_options(down=False)
    up_at = time.time()
    during = [a for a in fake_provider.arrivals() if down_at <= a.arrived_at.timestamp() < up_at]
    pending = (await counts(db, mailing["id"]))["pending"]
    assert pending > 5_000, "the outage must strike with most of the mailing still to send"

    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 10_000, timeout_s=60)
    received = fake_provider.received()
    assert set(received.accepted.values()) == {1}
    assert len(received.accepted) == 10_000
    breaker = CircuitBreaker(capacity=DEFAULTS.provider_concurrency)
    bound = breaker.capacity + breaker.threshold + probes_within(breaker, OUTAGE_S)
    print(
        f"\nprovider down {OUTAGE_S:.0f} s with {pending} messages pending: {len(during)} requests"
        f" (bound {bound}); the last {max(a.arrived_at.timestamp() for a in during) - down_at:.1f} s into it"
    )
    assert len(during) <= bound
    # Back at the first probe after the outage: within the longest pause between probes, accepted,
    # and nothing sent after it fails (the arrivals are the fake's, in its own thread).
    after = sorted((a for a in fake_provider.arrivals() if a.arrived_at.timestamp() >= up_at), key=_arrival_time)
    pause_in_force = min(breaker.max_pause_s, breaker.first_pause_s * 2 ** probes_within(breaker, OUTAGE_S))
    assert after[0].arrived_at.timestamp() - up_at <= pause_in_force + PROBE_SLACK_S
    assert [a for a in after if not a.accepted] == []


def _arrival_time(arrival: Arrival) -> float:
    return arrival.arrived_at.timestamp()
