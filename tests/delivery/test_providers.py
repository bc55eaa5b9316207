"""What the engine keeps per provider, and what the claim hands to routing."""

from __future__ import annotations

import asyncio

from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery.breaker import BreakerState
from notification.delivery.claim import Claim, claim_batch
from notification.delivery.sending import Delivery
from notification.provider.base import Outcome, SendResult
from notification.provider.http import HttpProvider
from notification.provider.rate_limit import RateBudget
from notification.provider.registry import ProviderRegistry, ProviderSpec, RegisteredProvider
from tests.delivery.observe import add_mailing, add_pending_messages, insert_clients, rows


def _registry(settings: Settings, *names: str) -> ProviderRegistry:
    return ProviderRegistry(
        [
            RegisteredProvider(
                HttpProvider(name, settings.provider_url, "", 1.0, 10),
                ProviderSpec(name, "http", 10, None),
                RateBudget(name, None, settings.psycopg_conninfo),
            )
            for name in names
        ],
        default=names[0],
    )


async def test_an_outage_of_one_provider_opens_its_breaker_only(settings: Settings) -> None:
    delivery = Delivery(settings, _registry(settings, "first", "second"))
    try:
        failing, other = delivery.lanes["first"].breaker, delivery.lanes["second"].breaker
        down = SendResult(Outcome.TRANSIENT, "HTTP 503", status_code=503)
        for _ in range(failing.threshold):
            await failing.admit()
            await failing.record(down)
        assert failing.state is BreakerState.OPEN
        assert other.state is BreakerState.CLOSED
        # The other provider's requests start at once, with no wait for the first one's pause.
        assert await asyncio.wait_for(other.admit(), 0.1) is False
        await other.record(None)
    finally:
        await delivery.aclose()


async def test_the_claim_returns_each_client_s_operator_code(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 3)
    await rows(
        db,
        "INSERT INTO clients (phone, operator_code, tag, timezone)"
        " VALUES ('79030000001', '903', '', 'UTC') RETURNING id",
    )
    mailing_id = await add_mailing(db, start_at="now() - interval '1 minute'", end_at="now() + interval '1 hour'")
    ids = await add_pending_messages(db, mailing_id)
    expected = dict(
        await rows(
            db,
            "SELECT m.id, c.operator_code FROM messages m JOIN clients c ON c.id = m.client_id"
            " WHERE m.mailing_id = %(id)s",
            {"id": mailing_id},
        )
    )
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        claim = await claim_batch(conn, mailing_id, 1, ids, lease_s=10)
    assert isinstance(claim, Claim)
    assert {m.id: m.operator_code for m in claim.messages} == expected
    assert sorted(expected.values()) == ["903", "916", "916", "916"]
