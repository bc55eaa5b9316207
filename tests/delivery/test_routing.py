"""Routing among stored providers, end to end: real workers, two fake HTTP providers, the
providers and routes set through the API, and each message's provider read from the fakes'
records and from ``messages.provider``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider, serve_fake_provider
from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc
from tests.api import API_TOKEN, Api, create_mailing, mailing_stats
from tests.waiting import wait_for
from tests.workers import WorkerProcess


@pytest.fixture
async def other_provider() -> AsyncIterator[RunningFakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


async def add_phones(api: Api, first: int, count: int, operator_code: str) -> list[dict[str, Any]]:
    body = [{"phone": str(first + i), "timezone": "UTC", "operator_code": operator_code} for i in range(count)]
    response = await api.post("/api/v1/clients/bulk", json=body)
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()
    return created


async def store_provider(api: Api, name: str, fake: RunningFakeProvider, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "kind": "http", "settings": {"url": fake.base_url}, **fields}
    response = await api.post("/api/v1/providers", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def set_routes(api: Api, rules: list[dict[str, Any]]) -> None:
    response = await api.put("/api/v1/routes", json=rules)
    assert response.status_code == 200, response.text


async def providers_of(db: AsyncSession, mailing_id: int) -> dict[int, str | None]:
    result = await db.execute(text("SELECT id, provider FROM messages WHERE mailing_id = :id"), {"id": mailing_id})
    return {row.id: row.provider for row in result}


async def all_sent(client: Api, mailing_id: int, count: int, timeout_s: float = 30) -> dict[str, Any]:
    return await wait_for(
        lambda: mailing_stats(client, mailing_id),
        lambda s: s["by_status"]["sent"] == count,
        timeout_s=timeout_s,
    )


async def test_messages_go_to_the_provider_of_their_operator_code_or_phone_prefix(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    other_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    by_code = await add_phones(client, 79000000000, 4, "900")
    by_prefix = await add_phones(client, 79250000000, 3, "925")
    rest = await add_phones(client, 79160000000, 5, "916")
    await store_provider(client, "a", fake_provider)
    await store_provider(client, "b", other_provider)
    await set_routes(
        client,
        [
            {"operator_codes": ["900"], "providers": ["b", "a"]},
            {"phone_prefixes": ["7925"], "providers": ["b"]},
        ],
    )
    start_worker()
    mailing = await create_mailing(client)
    await all_sent(client, mailing["id"], 12)

    to_b = {c["id"] for c in by_code + by_prefix}
    providers = await providers_of(db, mailing["id"])
    result = await db.execute(text("SELECT id, client_id FROM messages WHERE mailing_id = :id"), {"id": mailing["id"]})
    client_of = {row.id: row.client_id for row in result}
    expected = {m: ("b" if client_of[m] in to_b else "a") for m in client_of}
    assert providers == expected
    # What each fake received is exactly what was routed to it; no rule matched the rest: the
    # first provider added took them.
    assert set(other_provider.received().accepted) == {m for m, p in expected.items() if p == "b"}
    assert set(fake_provider.received().accepted) == {m for m, p in expected.items() if p == "a"}
    assert len(rest) == sum(1 for p in expected.values() if p == "a")


async def test_a_disabled_provider_takes_nothing(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    other_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    await add_phones(client, 79000000000, 6, "900")
    await store_provider(client, "a", fake_provider, enabled=False)
    await store_provider(client, "b", other_provider)
    await set_routes(client, [{"providers": ["a", "b"]}])
    start_worker()
    mailing = await create_mailing(client)
    await all_sent(client, mailing["id"], 6)
    assert not fake_provider.received().accepted
    assert set((await providers_of(db, mailing["id"])).values()) == {"b"}


async def test_b_takes_over_while_a_is_down_and_traffic_returns_to_a_when_it_is_back(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    other_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    await add_phones(client, 79000000000, 30, "900")
    await store_provider(client, "a", fake_provider)
    await store_provider(client, "b", other_provider)
    await set_routes(client, [{"providers": ["a", "b"]}])
    fake_provider.set_options(down=True)
    start_worker(RETRY_BASE_S="0.1", RETRY_MAX_S="0.5")
    down = await create_mailing(client)
    # Every message is sent while A answers 503 to everything: B took each one, within the
    # breaker's pause (the first retry goes to B, and the open breaker sends the rest there).
    await all_sent(client, down["id"], 30, timeout_s=30)
    assert not fake_provider.received().accepted
    assert set((await providers_of(db, down["id"])).values()) == {"b"}

    fake_provider.set_options(down=False)
    # A's breaker lets a probe through once its pause is over (each failed probe doubled it, up
    # to the breaker's longest, 30 s); A answers, and takes the traffic again. A mailing a second
    # keeps traffic coming until then.
    deadline = time.monotonic() + 30 + 15
    round_ = 0
    while True:
        round_ += 1
        mailing = await create_mailing(client, text=f"A is back? {round_}")
        await all_sent(client, mailing["id"], 30)
        providers = list((await providers_of(db, mailing["id"])).values())
        if providers.count("a") == 30:
            break
        assert time.monotonic() < deadline, f"traffic did not return to A: {providers}"
        await asyncio.sleep(1)
    assert len(fake_provider.received().accepted) >= 30


async def test_a_change_to_a_provider_reaches_a_running_worker_within_seconds(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    other_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    await add_phones(client, 79000000000, 3, "900")
    a = await store_provider(client, "a", fake_provider)
    worker = start_worker()
    await worker.ready()
    first = await create_mailing(client)
    await all_sent(client, first["id"], 3)
    assert len(fake_provider.received().accepted) == 3

    # The same provider now points at the other fake: no restart.
    body = {"name": "a", "kind": "http", "settings": {"url": other_provider.base_url}}
    assert (await client.put(f"/api/v1/providers/{a['id']}", json=body)).status_code == 200
    # Within a few seconds the worker has read the change (its poll is 1 s).
    await wait_for(
        lambda: _follow_log(worker),
        lambda log: log.count('"event": "providers read"') >= 2,
        timeout_s=5,
    )
    second = await create_mailing(client, text="moved")
    await all_sent(client, second["id"], 3)
    assert len(other_provider.received().accepted) == 3
    assert len(fake_provider.received().accepted) == 3


async def _follow_log(worker: WorkerProcess) -> str:
    return worker.log_path.read_text() if worker.log_path.exists() else ""


async def test_with_no_stored_provider_the_old_variables_still_send(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    await add_phones(client, 79000000000, 5, "900")
    start_worker()
    mailing = await create_mailing(client)
    await all_sent(client, mailing["id"], 5)
    assert len(fake_provider.received().accepted) == 5
    assert set((await providers_of(db, mailing["id"])).values()) == {"default"}


async def test_operator_codes_route_to_an_smpp_provider_and_the_rest_over_http(
    client: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    smsc_clients = await add_phones(client, 79000000000, 5, "900")
    await add_phones(client, 79160000000, 4, "916")
    with serve_fake_smsc(FakeSmscOptions(latency_ms=10)) as smsc:
        smpp = {
            "name": "smsc",
            "kind": "smpp",
            "settings": {"host": "127.0.0.1", "port": smsc.port, "system_id": "notification"},
            "window": 50,
        }
        assert (await client.post("/api/v1/providers", json=smpp)).status_code == 201
        await store_provider(client, "http", fake_provider)
        await set_routes(
            client,
            [{"operator_codes": ["900"], "providers": ["smsc", "http"]}, {"providers": ["http"]}],
        )
        start_worker()
        mailing = await create_mailing(client)
        await all_sent(client, mailing["id"], 9)
        submits = [s for s in smsc.submits() if s.message_id is not None]
    phones = {c["phone"] for c in smsc_clients}
    assert sorted(s.destination_addr for s in submits) == sorted(phones)
    result = await db.execute(
        text(
            "SELECT c.phone, m.provider, m.provider_message_id FROM messages m JOIN clients c ON c.id = m.client_id"
            " WHERE m.mailing_id = :id"
        ),
        {"id": mailing["id"]},
    )
    by_phone = {row.phone: (row.provider, row.provider_message_id) for row in result}
    ids_of = {s.destination_addr: s.message_id for s in submits}
    for phone, (provider, provider_message_id) in by_phone.items():
        if phone in phones:
            # The SMSC's own id from submit_sm_resp is stored with the message.
            assert (provider, provider_message_id) == ("smsc", ids_of[phone])
        else:
            assert provider == "http"
    assert len(fake_provider.received().accepted) == 4


async def test_a_stored_secret_reaches_the_provider_and_no_log_line(
    settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    key = Fernet.generate_key().decode()
    secret = "tok-81d3c0-never-in-a-log"
    fake_provider.set_options(token=secret)
    async with AsyncTestClient(app=create_app(replace(settings, secret_key=(key,)))) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        await add_phones(api, 79000000000, 3, "900")
        await store_provider(api, "a", fake_provider, secret=secret)
        worker = start_worker(SECRET_KEY=key)
        mailing = await create_mailing(api)
        # The fake refuses a wrong token (401, permanent): sent means the worker opened the secret.
        await all_sent(api, mailing["id"], 3)
    assert secret not in worker.log_path.read_text()


async def test_a_test_send_goes_through_the_stored_provider_of_its_route(
    client: Api, fake_provider: RunningFakeProvider, other_provider: RunningFakeProvider
) -> None:
    await store_provider(client, "a", fake_provider)
    await store_provider(client, "b", other_provider)
    await set_routes(client, [{"phone_prefixes": ["7925"], "providers": ["b"]}])
    mailing = await create_mailing(client)
    routed = await client.post(f"/api/v1/mailings/{mailing['id']}/test", json={"phone": "79250000001"})
    assert routed.json()["sent"] is True, routed.text
    fallback = await client.post(f"/api/v1/mailings/{mailing['id']}/test", json={"phone": "79160000001"})
    assert fallback.json()["sent"] is True, fallback.text
    assert len(other_provider.received().accepted) == 1
    assert len(fake_provider.received().accepted) == 1
