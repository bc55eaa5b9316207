"""Delivery under what production does to it: workers killed while planning and while sending, and
a dead plan job beside its twin (test_recovery.py: a killed worker behind a backlog, a provider
down). Real worker processes, the fake provider over HTTP, the real database."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import psycopg
from litestar import Litestar

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.jobs import schedule_planning
from tests.api import Api, create_mailing
from tests.delivery.observe import (
    backends_waiting_for_a_lock,
    counts,
    duplicate_bound,
    insert_clients,
    jobs_left,
    planned_version,
    resent,
    rows,
    wait_for_log,
)
from tests.waiting import wait_for
from tests.workers import WorkerProcess

SEND_TASK = "delivery:send_messages"
PLAN_TASK = "delivery:plan_mailing"
IN_FLIGHT_GRACE_S = 1.0


async def test_worker_killed_while_planning_then_another_mid_send_both_mailings_finish_sent_once(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 28_000)
    await insert_clients(db, 2_000, tags=["vip"], first=28_000)
    planner = start_worker()
    everyone = await create_mailing(client, text="For everyone")
    await wait_for_log(planner, f"Starting job {PLAN_TASK}")
    # The kill lands once the planning transaction is writing messages, and before it commits.
    await wait_for(lambda: _planning_writing_messages(db), bool, timeout_s=30, interval_s=0.01)
    planner.kill()
    assert await planned_version(db, everyone["id"]) == 0, "the kill must land before the plan committed"
    dead = await rows(db, "SELECT status FROM procrastinate_jobs WHERE task_name = %(t)s", {"t": PLAN_TASK})
    assert dead == [("doing",)]

    # A second mailing, sent slowly enough for the next kill to find its batches mid-send; the
    # first plan may or may not have been retried by then: the last worker finds both kinds of
    # stalled job, or one.
    vip = await create_mailing(client, text="For the few", filter={"operator_codes": [], "tags": ["vip"]})
    fake_provider.set_options(latency_ms=1000)
    sender = start_worker()
    await wait_for(lambda: counts(db, vip["id"]), lambda c: c["sent"] > 0, timeout_s=20)
    sender.kill()
    killed_at = time.time()
    at_kill = await counts(db, vip["id"])
    assert at_kill["pending"] > 0, "the second kill must land mid-send"
    stalled = await rows(
        db, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %(t)s AND status = 'doing'", {"t": SEND_TASK}
    )
    assert stalled[0][0] > 0

    fake_provider.set_options(latency_ms=0)
    finisher = start_worker(LOG_LEVEL="WARNING")
    await wait_for(lambda: counts(db, everyone["id"]), lambda c: c["sent"] == 30_000, timeout_s=180)
    await wait_for(lambda: counts(db, vip["id"]), lambda c: c["sent"] == 2_000, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=20)

    # One plan, every message recorded sent once.
    assert await counts(db, everyone["id"]) == {"pending": 0, "sent": 30_000, "failed": 0, "expired": 0, "cancelled": 0}
    # Each mailing planned its own audience, every client of it once: the vip clients in both.
    audiences = await rows(
        db,
        "SELECT m.mailing_id, count(*), count(*) FILTER (WHERE c.tag = 'vip') FROM messages m"
        " JOIN clients c ON c.id = m.client_id GROUP BY m.mailing_id",
    )
    assert sorted(audiences) == sorted([(everyone["id"], 30_000, 2_000), (vip["id"], 2_000, 2_000)])
    assert await rows(db, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %(t)s", {"t": PLAN_TASK}) == [(0,)]
    received = fake_provider.received()
    all_ids = {i for (i,) in await rows(db, "SELECT id FROM messages")}
    assert set(received.accepted) == all_ids
    # A message reached the provider twice only if its first request got there before the second
    # kill: it was in flight, or answered and not yet written.
    arrivals = fake_provider.arrivals()
    first_arrival: dict[int, float] = {}
    for arrival in arrivals:
        first_arrival.setdefault(arrival.msg_id, arrival.arrived_at.timestamp())
    twice = {i for i, n in received.requests.items() if n > 1}
    # (A request written to the socket just before the kill may be read by the provider a little
    # after it on a loaded machine: still a request that was in flight.)
    late = {i: first_arrival[i] - killed_at for i in twice if first_arrival[i] >= killed_at + IN_FLIGHT_GRACE_S}
    assert not late, late
    assert max(received.accepted.values()) <= 2
    duplicates = resent(received)
    assert duplicates <= duplicate_bound(200, 4, 100), duplicates
    print(f"\nduplicates after a kill mid-send (1 s provider latency, defaults): {duplicates}")
    log = "\n".join(line for worker in (planner, sender, finisher) for line in worker.log_lines())
    assert "UniqueViolation" not in log
    assert "stalled job retried" in log


async def _planning_writing_messages(conninfo: str) -> bool:
    """Another backend holds the messages table for writing inside an open transaction: the planning has
    begun inserting, and has not committed (the lock goes with the commit)."""
    found = await rows(
        conninfo,
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.relation = 'messages'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted"
        " AND a.pid <> pg_backend_pid() AND a.datname = current_database()",
    )
    return int(found[0][0]) > 0


async def test_dead_plan_job_beside_its_queued_twin_resolves_to_one_plan(
    client: Api,
    app: Litestar,
    settings: Settings,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 50)
    mailing = await create_mailing(client)
    async with await psycopg.AsyncConnection.connect(db) as holder:
        # The planning blocks on the mailing's row, inside its transaction, until the kill.
        await holder.execute("SELECT id FROM mailings WHERE id = %(id)s FOR UPDATE", {"id": mailing["id"]})
        planner = start_worker()
        await wait_for_log(planner, f"Starting job {PLAN_TASK}")
        await wait_for(lambda: backends_waiting_for_a_lock(db), lambda n: n == 1)
        planner.kill()
        # The twin an earlier reconciler deferred beside a dead plan: same lock, same queueing lock
        # (allowed, that lock only covers waiting jobs).
        start_at = dt.datetime.fromisoformat(mailing["start_at"])
        await schedule_planning(app.state.job_queue, mailing["id"], 1, start_at)
    plan_jobs = "SELECT id, status FROM procrastinate_jobs WHERE task_name = %(t)s ORDER BY id"
    (dead_id, _), (twin_id, _) = await rows(db, plan_jobs, {"t": PLAN_TASK})

    successor = start_worker()
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 50, timeout_s=30)
    assert await rows(db, plan_jobs, {"t": PLAN_TASK}) == [(dead_id, "failed")], "the twin ran and is gone"
    assert fake_provider.received().total_requests == 50
    assert max(fake_provider.received().accepted.values()) == 1
    log = "\n".join(successor.log_lines())
    assert "stalled job closed: its queued twin runs instead" in log
    assert log.count('"event": "mailing planned"') == 1
    assert f"plan_mailing[{twin_id}]" in log
    assert "UniqueViolation" not in log


# The defaults, not the test-speed settings: the recovery time they give is what the README states.
