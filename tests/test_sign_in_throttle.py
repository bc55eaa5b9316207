"""Wrong tokens are slowed per client address, with counters in PostgreSQL that every API process
shares: past the allowance an address gets 429 with Retry-After, and the audit log stops growing."""

from __future__ import annotations

from dataclasses import replace

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from tests.conftest import API_TOKEN
from tests.console_client import Console

WRONG = "wrong-token-0123456789abcdef0123456789"
ALLOWED = 5


async def _count(db: AsyncSession, table: str) -> int:
    found = (await db.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
    await db.commit()
    return int(found)


async def test_repeated_wrong_tokens_on_the_api_are_slowed_across_processes(settings: Settings) -> None:
    limited = replace(settings, sign_in_failures_allowed=ALLOWED)
    wrong = {"Authorization": f"Bearer {WRONG}"}
    # Two apps over one database: two API processes behind one address.
    async with AsyncTestClient(app=create_app(limited)) as first, AsyncTestClient(app=create_app(limited)) as second:
        statuses = [
            (await (first if i % 2 else second).get("/api/v1/clients", headers=wrong)).status_code for i in range(8)
        ]
        assert statuses == [401] * ALLOWED + [429] * 3
        slowed = await first.get("/api/v1/clients", headers=wrong)
        assert slowed.status_code == 429
        assert 0 < int(slowed.headers["retry-after"]) <= 900
        assert slowed.headers["content-type"].startswith("application/problem+json")
        # The right token is never slowed: nobody without it can guess it at this rate.
        right = await second.get("/api/v1/clients", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert right.status_code == 200


async def test_repeated_wrong_tokens_on_the_console_are_slowed_and_audited_boundedly(
    settings: Settings, db: AsyncSession
) -> None:
    limited = replace(settings, sign_in_failures_allowed=ALLOWED)
    async with AsyncTestClient(app=create_app(limited)) as client:
        console = Console(client)
        statuses = [(await console.sign_in(token=f"{WRONG}{i}")).status_code for i in range(40)]
        assert statuses == [400] * ALLOWED + [429] * (40 - ALLOWED)
        assert await _count(db, "audit_log") == ALLOWED
        slowed = await console.sign_in(token=f"{WRONG}x")
        assert "Too many failed sign-ins" in slowed.text
        assert int(slowed.headers["retry-after"]) > 0
        # Even the right token waits: the address is not comparing tokens any more.
        assert (await console.sign_in()).status_code == 429
