"""A console session is only as good as what signed it in, today: a token taken out of the settings
or an address taken off the lists ends its sessions at their next request, and every session ends
a fixed time after its sign-in however busy it keeps."""

from __future__ import annotations

import time
from dataclasses import replace

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from tests.console_client import SESSION_COOKIE, Console
from tests.waiting import wait_for

OTHER_TOKEN = "another-token-0123456789abcdef0123456789"


async def _opens(settings: Settings, session_id: str) -> int:
    """The dashboard's status for this session cookie in a service started with ``settings``."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.cookies.set(SESSION_COOKIE, session_id, domain="testserver.local", path="/admin")
        return (await client.get("/admin/clients", follow_redirects=False)).status_code


async def test_a_revoked_token_loses_its_sessions_at_the_next_request(
    console: Console, settings: Settings, db: AsyncSession
) -> None:
    session_id = console.client.cookies.get(SESSION_COOKIE)
    assert session_id
    assert await _opens(settings, session_id) == 200
    # Restarted with the token replaced: the API refuses it, and so does the console.
    revoked = replace(settings, api_tokens=(OTHER_TOKEN,))
    assert await _opens(revoked, session_id) == 303
    assert (await db.execute(text("SELECT count(*) FROM console_sessions"))).scalar_one() == 0
    # Back with the token, the session is gone for good: it must sign in again.
    assert await _opens(settings, session_id) == 303


async def test_a_session_ends_a_fixed_time_after_sign_in_however_active(anonymous: Console, settings: Settings) -> None:
    short = replace(settings, session_max_age_s=2.0)
    async with AsyncTestClient(app=create_app(short)) as client:
        console = Console(client)
        signed_in_at = time.monotonic()
        assert (await console.sign_in()).status_code == 200

        async def status() -> int:
            return int((await console.get("/admin/clients", follow_redirects=False)).status_code)

        # Requests every tenth of a second keep sliding the idle timeout; the absolute one ends it.
        assert await wait_for(status, lambda code: code == 303, timeout_s=20) == 303
        assert time.monotonic() - signed_in_at >= 2.0
