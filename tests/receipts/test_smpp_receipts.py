"""Receipts over real SMPP: the fake SMSC on TCP, real worker processes storing what it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from notification.config import Settings
from notification.dev.fake_smsc import FakeSmscOptions, RunningFakeSmsc, serve_fake_smsc
from notification.provider import smpp_wire as wire
from notification.stats.counters import verify_counters
from tests.api import create_mailing
from tests.delivery.observe import insert_clients, rows
from tests.waiting import wait_for
from tests.workers import WorkerProcess

Api = AsyncTestClient[Litestar]
STAT = {"DELIVRD": "delivered", "UNDELIV": "undelivered"}


@pytest.fixture
async def smsc(client: Api) -> AsyncIterator[RunningFakeSmsc]:
    """The fake SMSC stored as the only provider, sending receipts 50 ms after each submit."""
    async with serve_fake_smsc(FakeSmscOptions(receipts=True, receipt_delay_ms=50, seed=23)) as fake:
        settings = {"host": "127.0.0.1", "port": fake.port, "system_id": "notification"}
        stored = await client.post(
            "/api/v1/providers", json={"name": "smsc", "kind": "smpp", "settings": settings, "window": 50}
        )
        assert stored.status_code == 201, stored.text
        yield fake


async def _states(db: str, mailing_id: int) -> dict[str, tuple[str, str | None, str | None]]:
    """Each message's (status, delivery state, error) by the SMSC id it got."""
    found = await rows(
        db,
        "SELECT provider_message_id, status, delivery_state, delivery_error FROM messages WHERE mailing_id = %(m)s",
        {"m": mailing_id},
    )
    return {pid: (status, state, error) for pid, status, state, error in found}


def _all_decided(states: dict[str, tuple[str, str | None, str | None]], count: int) -> bool:
    return len(states) == count and all(state is not None for _, state, _ in states.values())


def _expected(smsc: RunningFakeSmsc) -> dict[str, tuple[str, str | None, str | None]]:
    """What the fake decided for each message: the first receipt it sent for it."""
    expected: dict[str, tuple[str, str | None, str | None]] = {}
    for deliver in smsc.delivers():
        if deliver.kind == "receipt" and deliver.receipted_message_id not in expected:
            stat = deliver.text.split("stat:")[1].split()[0]
            err = deliver.text.split("err:")[1].split()[0]
            expected[str(deliver.receipted_message_id)] = (
                "sent",
                STAT[stat],
                err if STAT[stat] == "undelivered" else None,
            )
    return expected


async def test_receipts_delivered_undelivered_duplicated_and_out_of_order_are_each_applied_once(
    settings: Settings, client: Api, smsc: RunningFakeSmsc, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    smsc.set_options(undelivered_rate=0.3, duplicate_rate=0.5, out_of_order=True)
    await insert_clients(db, 40)
    start_worker()
    mailing = await create_mailing(client)
    states = await wait_for(lambda: _states(db, mailing["id"]), lambda s: _all_decided(s, 40), timeout_s=30)
    assert states == _expected(smsc)
    assert {state for _, state, _ in states.values()} == {"delivered", "undelivered"}
    receipts = [d for d in smsc.delivers() if d.kind == "receipt"]
    assert len(receipts) > 40, "no duplicate was sent"
    # Every receipt acknowledged, duplicates too, and none before it was stored (it was, above).
    await wait_for(lambda: _answers(smsc), lambda answers: answers == [wire.ESME_ROK] * len(receipts), timeout_s=10)
    # A contrary receipt, late: a decided message keeps its state; an intermediate one changes nothing.
    delivered = next(pid for pid, (_, state, _) in states.items() if state == "delivered")
    smsc.send_receipt(delivered, "UNDELIV", "099").result(5)
    smsc.send_receipt(delivered, "ENROUTE", "000").result(5)
    await wait_for(lambda: _answers(smsc), lambda answers: len(answers) == len(receipts) + 2, timeout_s=10)
    assert (await _states(db, mailing["id"]))[delivered] == ("sent", "delivered", None)
    await _counters_agree(db)
    stats = (await client.get(f"/api/v1/mailings/{mailing['id']}/stats")).json()
    undelivered = sum(1 for _, state, _ in states.values() if state == "undelivered")
    assert stats["by_delivery_state"] == {"delivered": 40 - undelivered, "undelivered": undelivered, "unknown": 0}


async def _storing_receipts(db: str) -> int:
    """Connections writing receipts that wait on a lock."""
    found = await rows(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query LIKE '%%set_delivery_states%%'",
    )
    return int(found[0][0])


async def _answers(smsc: RunningFakeSmsc) -> list[int | None]:
    return [d.answer_status for d in smsc.delivers() if d.kind == "receipt"]


async def _counters_agree(db: str) -> None:
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        verification = await verify_counters(conn)
    assert verification.ok, [str(d) for d in verification.differences()]


async def test_a_receipt_that_overtakes_its_submit_sm_resp_is_kept_and_applied(
    settings: Settings, client: Api, smsc: RunningFakeSmsc, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    smsc.set_options(receipt_before_answer=True, undelivered_rate=0.5)
    await insert_clients(db, 20)
    worker = start_worker()
    mailing = await create_mailing(client)
    states = await wait_for(lambda: _states(db, mailing["id"]), lambda s: _all_decided(s, 20), timeout_s=30)
    assert states == _expected(smsc)
    assert any("receipts kept until their message id is stored" in line for line in worker.log_lines())
    assert await rows(db, "SELECT count(*) FROM unmatched_receipts") == [(0,)]
    await _counters_agree(db)


async def test_a_worker_killed_between_reading_receipts_and_storing_them_loses_none_and_applies_each_once(
    settings: Settings, client: Api, smsc: RunningFakeSmsc, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    smsc.set_options(receipts=False)
    await insert_clients(db, 10)
    first = start_worker()
    mailing = await create_mailing(client)
    sent = await wait_for(lambda: _states(db, mailing["id"]), lambda s: len(s) == 10 and None not in s, timeout_s=30)
    # Storing receipts waits behind this lock: the worker has read them, not stored them.
    async with await psycopg.AsyncConnection.connect(db) as holder:
        await holder.execute("LOCK TABLE messages IN SHARE MODE")
        for smsc_id in sent:
            smsc.send_receipt(smsc_id).result(5)
        await wait_for(lambda: _storing_receipts(db), lambda waiting: waiting >= 1, timeout_s=10)
        first.kill()
        await holder.rollback()
    assert all(answer is None for answer in await _answers(smsc))
    assert await _states(db, mailing["id"]) == dict.fromkeys(sent, ("sent", None, None))
    start_worker()
    states = await wait_for(lambda: _states(db, mailing["id"]), lambda s: _all_decided(s, 10), timeout_s=30)
    assert states == dict.fromkeys(sent, ("sent", "delivered", None))
    # Sent again by the SMSC once the new bind came up, and acknowledged there.
    await wait_for(lambda: _answers(smsc), lambda answers: answers.count(wire.ESME_ROK) == 10, timeout_s=10)
    assert len(await _answers(smsc)) == 20
    await _counters_agree(db)
