"""Who a mailing reaches: an advertising one only clients whose consent stands, neither kind a
suppressed number; and an opt-out during a running mailing (a STOP over SMPP from the fake SMSC, a
consent revoked through the API) stops that number's pending message within a second."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.dev.fake_smsc import DeliverRecord, FakeSmscOptions, SubmitRecord, serve_fake_smsc
from tests.api import Api, create_mailing
from tests.consent.audience import write_directory
from tests.delivery.observe import counts, jobs_left, rows
from tests.waiting import wait_for
from tests.workers import WorkerProcess

BOUND_S = 1.0
PACE = 100
"""Parts per second the provider takes in the mid-mailing tests: 300 messages drain in 3 s."""
REPLY = "You will get no more messages from us."
SEND_TASK = "delivery:send_messages"


async def test_advertising_skips_clients_without_consent_and_suppressed_ones_service_only_suppressed(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    directory = await write_directory(db, 60)
    assert directory.suppressed & directory.consenting
    assert directory.suppressed & directory.not_consenting
    start_worker()

    advertising = await create_mailing(client, kind="advertising", text="Sale")
    service = await create_mailing(client, kind="service", text="Your order")
    for mailing in (advertising, service):
        await wait_for(lambda m=mailing: counts(db, m["id"]), lambda c: c["pending"] == 0 and c["sent"] > 0)

    reached = {
        text: {str(a.phone) for a in fake_provider.arrivals() if a.text == text} for text in ("Sale", "Your order")
    }
    assert reached["Sale"] == {str(p) for p in directory.reached("advertising")}
    assert reached["Your order"] == {str(p) for p in directory.reached("service")}
    for mailing, kind in ((advertising, "advertising"), (service, "service")):
        # Left out at planning: no message at all, not one cancelled later by the claim's check.
        assert sum((await counts(db, mailing["id"])).values()) == len(directory.reached(kind))
        read = (await client.get(f"/api/v1/mailings/{mailing['id']}")).json()
        no_consent = directory.not_consenting - directory.suppressed if kind == "advertising" else set()
        assert read["left_out"] == {"suppressed": len(directory.suppressed), "no_consent": len(no_consent)}


async def _replies(submits: list[SubmitRecord]) -> list[str]:
    return sorted(s.destination_addr for s in submits if s.text == REPLY)


async def _answered(delivers: list[DeliverRecord]) -> list[AnsweredDeliver]:
    return [AnsweredDeliver(d.answered_at, d.answer_status) for d in delivers if d.answered_at is not None]


@dataclass(frozen=True, slots=True)
class AnsweredDeliver:
    answered_at: dt.datetime
    answer_status: int | None


async def _claimed_not_sent(db: str, mailing_id: int, sent_phones: set[str], count: int) -> dict[str, int]:
    """Clients whose message a batch has claimed and queued but that has not reached the provider:
    the worker holds their phone already."""
    queued = await rows(
        db,
        "SELECT c.phone, m.id FROM messages m JOIN clients c ON c.id = m.client_id"
        " WHERE m.mailing_id = %(id)s AND m.status = 'pending' AND m.leased_until > now() ORDER BY m.id DESC",
        {"id": mailing_id},
    )
    doomed = {phone: message_id for phone, message_id in queued if phone not in sent_phones}
    # Spread over what is held: the senders take a batch's messages in no promised order.
    return dict(random.Random(25).sample(sorted(doomed.items()), min(count, len(doomed))))


async def test_a_stop_over_smpp_mid_mailing_stops_that_numbers_pending_message_within_a_second(
    client: Api, settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await write_directory(db, 300, consent_every=1, suppress_every=10**9)
    async with serve_fake_smsc(FakeSmscOptions(latency_ms=50, seed=25)) as smsc:
        smpp = {"host": "127.0.0.1", "port": smsc.port, "system_id": "notification"}
        # Paced: the claimed batch drains over seconds whatever the machine's speed, so the stop
        # words find messages a batch holds and has not submitted yet.
        body = {"name": "smsc", "kind": "smpp", "settings": smpp, "window": 100, "rate_limit": PACE}
        stored = await client.post("/api/v1/providers", json=body)
        assert stored.status_code == 201, stored.text
        start_worker(STOP_REPLY=REPLY)
        mailing = await create_mailing(client, kind="advertising", text="Sale")
        await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 50, timeout_s=30)
        doomed = await _claimed_not_sent(db, mailing["id"], {s.destination_addr for s in smsc.submits()}, 20)
        assert len(doomed) == 20, "the stop words must find claimed messages not yet submitted"

        for phone in doomed:
            smsc.send_mo(phone, " stop ").result(timeout=5)
        await wait_for(
            lambda: rows(db, "SELECT count(*) FROM suppressions WHERE reason = 'stop_word'"),
            lambda r: r[0][0] == len(doomed),
            timeout_s=10,
        )
        delivers = await wait_for(lambda: _answered(smsc.delivers()), lambda d: len(d) == len(doomed), timeout_s=10)
        assert {d.answer_status for d in delivers} == {0}
        # Sent one after another: the i-th deliver_sm carried the i-th number's stop word. Its
        # answer is when the service had stored it.
        stopped_at = {phone: d.answered_at.timestamp() for phone, d in zip(doomed, delivers, strict=True)}
        await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0, timeout_s=60)
        await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)
        # The reply to each stop word: a job of its own, through the SMSC the word came from.
        await wait_for(
            lambda: _replies(smsc.submits()), lambda replied: replied == sorted(doomed), timeout_s=30, interval_s=0.2
        )
        submits = [s for s in smsc.submits() if s.text != REPLY]

    late = [
        s.received_at.timestamp() - stopped_at[s.destination_addr]
        for s in submits
        if s.destination_addr in doomed and s.received_at.timestamp() > stopped_at[s.destination_addr] + BOUND_S
    ]
    assert late == [], f"submits more than {BOUND_S} s after the stop word: {late}"
    submitted = {s.destination_addr for s in submits}
    final = dict(
        await rows(db, "SELECT id, error_kind FROM messages WHERE id = ANY(%(ids)s)", {"ids": list(doomed.values())})
    )
    cancelled = {phone for phone, message_id in doomed.items() if final[message_id] == "suppressed"}
    assert cancelled == set(doomed) - submitted
    assert cancelled, "some stop words must have stopped a pending message"
    stored_inbound = await rows(db, "SELECT phone, text, stop_word, provider FROM inbound_messages")
    assert {(p, t, s, pr) for p, t, s, pr in stored_inbound} == {(p, " stop ", True, "smsc") for p in doomed}


async def test_consent_revoked_mid_mailing_stops_that_clients_pending_advertising_within_a_second(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await write_directory(db, 300, consent_every=1, suppress_every=10**9)
    fake_provider.set_options(latency_ms=50, seed=25)
    start_worker(PROVIDER_RATE_LIMIT=str(PACE))
    mailing = await create_mailing(client, kind="advertising")
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 50, timeout_s=30)
    doomed = await _claimed_not_sent(db, mailing["id"], {a.phone for a in fake_provider.arrivals()}, 20)
    assert len(doomed) == 20

    revoked_at: dict[str, float] = {}
    ids = dict(await rows(db, "SELECT phone, id FROM clients WHERE phone = ANY(%(p)s)", {"p": list(doomed)}))
    for phone in doomed:
        response = await client.patch(
            f"/api/v1/clients/{ids[phone]}", json={"consent_revoked_at": "2026-12-03T12:00:00+00:00"}
        )
        assert response.status_code == 200, response.text
        revoked_at[phone] = time.time()
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0, timeout_s=60)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    arrivals = fake_provider.arrivals()
    late = [
        a.arrived_at.timestamp() - revoked_at[str(a.phone)]
        for a in arrivals
        if str(a.phone) in revoked_at and a.arrived_at.timestamp() > revoked_at[str(a.phone)] + BOUND_S
    ]
    assert late == []
    requested = {str(a.phone) for a in arrivals}
    final = dict(
        await rows(db, "SELECT id, error_kind FROM messages WHERE id = ANY(%(ids)s)", {"ids": list(doomed.values())})
    )
    cancelled = {phone for phone, message_id in doomed.items() if final[message_id] == "no_consent"}
    assert cancelled == set(doomed) - requested
    assert cancelled


async def test_an_smsc_saying_the_number_does_not_exist_suppresses_it_when_the_setting_says_so(
    client: Api, settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    directory = await write_directory(db, 6, consent_every=1, suppress_every=10**9)
    reached = len(directory.reached("service"))
    no_such_number = 0x0B  # ESME_RINVDSTADR
    async with serve_fake_smsc(FakeSmscOptions(status_rates={no_such_number: 1.0})) as smsc:
        smpp = {"host": "127.0.0.1", "port": smsc.port, "system_id": "notification"}
        stored = await client.post("/api/v1/providers", json={"name": "smsc", "kind": "smpp", "settings": smpp})
        assert stored.status_code == 201, stored.text
        start_worker(SUPPRESS_INVALID_NUMBERS="true")
        mailing = await create_mailing(client, kind="service")
        await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["failed"] == reached, timeout_s=30)
        suppressed = await wait_for(
            lambda: rows(
                db, "SELECT reason, created_by, count(*) FROM suppressions WHERE created_by <> 'test' GROUP BY 1, 2"
            ),
            lambda r: r == [("invalid_number", "provider:smsc", reached)],
            timeout_s=10,
        )
        assert suppressed
        again = await create_mailing(client, kind="service")
        read = await wait_for(
            lambda: client.get(f"/api/v1/mailings/{again['id']}"), lambda r: r.json()["left_out"] is not None
        )
        assert read.json()["left_out"] == {"suppressed": 6, "no_consent": 0}
