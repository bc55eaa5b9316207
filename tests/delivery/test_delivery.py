from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from notification.provider.fake import RunningFakeProvider
from tests.factories import ClientCreateFactory
from tests.waiting import wait_for
from tests.workers import WorkerProcess

Client = AsyncTestClient[Litestar]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _add_clients(client: Client, count: int, **fields: Any) -> list[dict[str, Any]]:
    rows = [msgspec.to_builtins(ClientCreateFactory.build(**fields)) for _ in range(count)]
    response = await client.post("/api/v1/clients/bulk", json=rows)
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()
    return created


async def _create_mailing(client: Client, **fields: Any) -> dict[str, Any]:
    body = {
        "text": "Winter sale",
        "start_at": (_now() - dt.timedelta(minutes=1)).isoformat(),
        "end_at": (_now() + dt.timedelta(hours=1)).isoformat(),
        **fields,
    }
    response = await client.post("/api/v1/mailings", json=body)
    assert response.status_code == 201, response.text
    mailing: dict[str, Any] = response.json()
    return mailing


async def _stats(client: Client, mailing_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/mailings/{mailing_id}/stats", params={"limit": 1000})
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


async def test_due_mailing_is_delivered_once_to_every_matching_client(
    client: Client, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    matching = await _add_clients(client, 30, operator_code="916", tag="vip")
    await _add_clients(client, 10, operator_code="903", tag="vip")
    start_worker()
    mailing = await _create_mailing(client, filter={"operator_codes": ["916"], "tags": ["vip"]})

    stats = await wait_for(
        lambda: _stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 30, timeout_s=30
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
