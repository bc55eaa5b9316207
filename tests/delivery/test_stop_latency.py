"""A change to a mailing reaches the requests of batches already running: a second after the API
answered a DELETE or a PATCH, no request starts that contradicts it. The provider answers in
500-800 ms (the jitter keeps requests starting all the time rather than in waves), so hundreds
of claimed messages are queued in the worker when the change lands; the fake provider stamps
each request's arrival."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import Api, create_mailing
from tests.delivery.observe import arrivals_of, counts, insert_clients, jobs_left, message_ids, rows
from tests.either_provider import SendingProvider
from tests.waiting import wait_for
from tests.workers import WorkerProcess

BOUND_S = 1.0
LATENCY_MS = 500
JITTER_MS = 300
SEND_TASK = "delivery:send_messages"


async def _mailing_under_way(
    client: Api,
    db: str,
    fake_provider: RunningFakeProvider | SendingProvider,
    start_worker: Callable[..., WorkerProcess],
    **fields: object,
) -> dict[str, Any]:
    if isinstance(fake_provider, SendingProvider):
        fake_provider.set_latency(LATENCY_MS, JITTER_MS, seed=16)
    else:
        fake_provider.set_options(latency_ms=LATENCY_MS, latency_jitter_ms=JITTER_MS, seed=16)
    start_worker()
    mailing = await create_mailing(client, **fields)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 200, timeout_s=30)
    return mailing


async def test_no_request_for_a_deleted_mailing_starts_more_than_1_s_after_the_delete(
    client: Api, settings: Settings, sending_provider: SendingProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000)
    mailing = await _mailing_under_way(client, db, sending_provider, start_worker)
    ids = await message_ids(db, mailing["id"])
    await sending_provider.know(db, mailing["id"])

    response = await client.delete(f"/api/v1/mailings/{mailing['id']}")
    deleted_at = time.time()
    assert response.status_code == 204
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    requests = sending_provider.requests()
    after = [
        r.arrived_at.timestamp() - deleted_at
        for r in requests
        if r.msg_id in ids and r.arrived_at.timestamp() > deleted_at
    ]
    print(f"\nDELETE: {len(after)} requests started after it returned, the last {max(after, default=0):.2f} s after")
    assert max(after, default=0) <= BOUND_S
    assert len(requests) < 2_000, "the deletion stopped the mailing"
    assert set(sending_provider.requests_per_message().values()) == {1}


async def test_requests_starting_more_than_1_s_after_a_text_patch_carry_the_new_text(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000)
    mailing = await _mailing_under_way(client, db, fake_provider, start_worker, text="Old text")

    response = await client.patch(f"/api/v1/mailings/{mailing['id']}", json={"text": "New text"})
    patched_at = time.time()
    assert response.status_code == 200
    assert response.json()["text"] == "New text"
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 2_000, timeout_s=30)

    arrivals = fake_provider.arrivals()
    old_after = [
        a.arrived_at.timestamp() - patched_at
        for a in arrivals
        if a.arrived_at.timestamp() > patched_at and a.text == "Old text"
    ]
    print(
        f"\ntext PATCH: {len(old_after)} requests with the old text after it returned,"
        f" the last {max(old_after, default=0):.2f} s after"
    )
    late = [a for a in arrivals if a.arrived_at.timestamp() > patched_at + BOUND_S]
    assert late, "the mailing must still be sending a second after the change"
    assert {a.text for a in late} == {"New text"}
    received = fake_provider.received()
    assert len(received.requests) == 2_000
    assert set(received.requests.values()) == {1}


async def test_no_request_for_a_client_a_filter_patch_removed_starts_more_than_1_s_after_it(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000, tags=["vip", "new"])
    mailing = await _mailing_under_way(
        client, db, fake_provider, start_worker, filter={"operator_codes": [], "tags": ["vip", "new"]}
    )
    removed = await message_ids(db, mailing["id"], where="c.tag = 'new'")

    response = await client.patch(f"/api/v1/mailings/{mailing['id']}", json={"filter": {"tags": ["vip"]}})
    patched_at = time.time()
    assert response.status_code == 200
    assert response.json()["filter"] == {"operator_codes": [], "tags": ["vip"], "attributes": {}}
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0 and c["cancelled"] > 0, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    after = [
        a.arrived_at.timestamp() - patched_at for a in arrivals_of(fake_provider.arrivals(), removed, after=patched_at)
    ]
    print(f"\nfilter PATCH: {len(after)} requests for removed clients after it, the last {max(after, default=0):.2f} s")
    assert max(after, default=0) <= BOUND_S
    final = await counts(db, mailing["id"])
    kept = await message_ids(db, mailing["id"], where="c.tag = 'vip'")
    received = fake_provider.received()
    assert kept <= set(received.accepted), "every client still matching got the message"
    assert final["sent"] == len(received.accepted)
    assert final["cancelled"] == len(removed - set(received.accepted))
    assert set(received.requests.values()) == {1}


async def test_no_request_for_a_deleted_client_starts_more_than_1_s_after_its_delete(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000)
    mailing = await _mailing_under_way(client, db, fake_provider, start_worker)
    # Clients whose message a batch has claimed and queued but not yet sent: the worker holds their phone.
    queued = await rows(
        db,
        "SELECT client_id, id FROM messages WHERE mailing_id = %(id)s AND status = 'pending'"
        " AND leased_until > now() ORDER BY id DESC",
        {"id": mailing["id"]},
    )
    requested = {a.msg_id for a in fake_provider.arrivals()}
    doomed = [(client_id, message_id) for client_id, message_id in queued if message_id not in requested][:40]
    assert len(doomed) == 40, "the deletions must find claimed messages not yet requested"

    deleted_at: dict[int, float] = {}
    for client_id, message_id in doomed:
        response = await client.delete(f"/api/v1/clients/{client_id}")
        assert response.status_code == 204, response.text
        deleted_at[message_id] = time.time()
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    arrivals = fake_provider.arrivals()
    after = [
        a.arrived_at.timestamp() - deleted_at[a.msg_id]
        for a in arrivals
        if a.msg_id in deleted_at and a.arrived_at.timestamp() > deleted_at[a.msg_id]
    ]
    print(f"\nclient DELETE: {len(after)} requests after it returned, the last {max(after, default=0):.2f} s after")
    assert max(after, default=0) <= BOUND_S
    received = fake_provider.received()
    assert set(received.accepted.values()) == {1}
    assert set(received.requests.values()) == {1}
    # A message the provider accepted stays sent, detached from its deleted client; the others are cancelled.
    final = dict(await rows(db, "SELECT id, status FROM messages WHERE id = ANY(%(ids)s)", {"ids": list(deleted_at)}))
    assert {i for i, status in final.items() if status == "sent"} == set(received.accepted) & set(deleted_at)
    assert {i for i, status in final.items() if status == "cancelled"} == set(deleted_at) - set(received.accepted)
    final_counts = await counts(db, mailing["id"])
    assert final_counts["sent"] == len(received.accepted)
    assert final_counts["sent"] + final_counts["cancelled"] == 2_000


async def test_a_put_during_delivery_reaches_running_batches_and_sends_nothing_twice(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000, tags=["vip", "new"])
    mailing = await _mailing_under_way(
        client, db, fake_provider, start_worker, text="Old text", filter={"operator_codes": [], "tags": ["vip", "new"]}
    )
    removed = await message_ids(db, mailing["id"], where="c.tag = 'new'")
    replacement = {
        "text": "New text",
        "kind": "service",
        "start_at": mailing["start_at"],
        "end_at": mailing["end_at"],
        "filter": {"operator_codes": [], "tags": ["vip"]},
    }

    response = await client.put(f"/api/v1/mailings/{mailing['id']}", json=replacement)
    put_at = time.time()
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["text"], body["filter"], body["send_window"]) == (
        "New text",
        {**replacement["filter"], "attributes": {}},
        None,
    )
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["pending"] == 0 and c["cancelled"] > 0, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    arrivals = fake_provider.arrivals()
    after = [a.arrived_at.timestamp() - put_at for a in arrivals_of(arrivals, removed, after=put_at)]
    print(f"\nPUT: {len(after)} requests for removed clients after it, the last {max(after, default=0):.2f} s after")
    assert max(after, default=0) <= BOUND_S
    late = [a for a in arrivals if a.arrived_at.timestamp() > put_at + BOUND_S]
    assert late, "the mailing must still be sending a second after the change"
    assert {a.text for a in late} == {"New text"}
    received = fake_provider.received()
    assert set(received.requests.values()) == {1}
    assert set(received.accepted.values()) == {1}
    kept = await message_ids(db, mailing["id"], where="c.tag = 'vip'")
    assert kept <= set(received.accepted)
    final = await counts(db, mailing["id"])
    assert final["sent"] == len(received.accepted)
    assert final["cancelled"] == len(removed - set(received.accepted))


async def test_client_changes_during_delivery_send_nothing_twice(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A client's change does not re-plan the mailings it is in: its message is sent once, claimed or not."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 2_000)
    mailing = await _mailing_under_way(client, db, fake_provider, start_worker)
    pending = await rows(
        db,
        "SELECT client_id FROM messages WHERE mailing_id = %(id)s AND status = 'pending' ORDER BY id DESC LIMIT 40",
        {"id": mailing["id"]},
    )
    assert len(pending) == 40
    for n, (client_id,) in enumerate(pending):
        changes = {"tag": "moved"} if n % 2 else {"phone": f"79{n:09d}", "operator_code": "999"}
        response = await client.patch(f"/api/v1/clients/{client_id}", json=changes)
        assert response.status_code == 200, response.text
        assert response.json() | changes == response.json()
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 2_000, timeout_s=30)
    await wait_for(lambda: jobs_left(db, SEND_TASK), lambda n: n == 0, timeout_s=30)

    received = fake_provider.received()
    assert len(received.accepted) == 2_000
    assert set(received.requests.values()) == {1}
    assert set(received.accepted.values()) == {1}
