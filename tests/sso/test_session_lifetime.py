"""An address taken off the lists loses its console sessions at their next request; one moved from
the admins to the viewers keeps its session with the viewer's rights only."""

from __future__ import annotations

from dataclasses import replace

from litestar.testing import AsyncTestClient

from notification.app import create_app
from notification.config import Settings
from tests.console_client import SESSION_COOKIE, Console
from tests.sso.conftest import ADMIN, sign_in_through


async def _status(settings: Settings, session_id: str, path: str) -> int:
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.cookies.set(SESSION_COOKIE, session_id, domain="testserver.local", path="/admin")
        return (await client.get(path, follow_redirects=False)).status_code


async def test_a_removed_email_loses_its_session_and_a_demoted_one_its_rights(
    anonymous: Console, settings: Settings
) -> None:
    assert (await sign_in_through(anonymous)).status_code == 303
    session_id = anonymous.client.cookies.get(SESSION_COOKIE)
    assert session_id
    assert await _status(settings, session_id, "/admin/clients/new") == 200

    demoted = replace(settings, admin_emails=(), viewer_emails=(ADMIN,))
    assert await _status(demoted, session_id, "/admin/clients") == 200
    assert await _status(demoted, session_id, "/admin/clients/new") == 403

    removed = replace(settings, admin_emails=(), viewer_emails=())
    assert await _status(removed, session_id, "/admin/clients") == 303
    assert await _status(settings, session_id, "/admin/clients") == 303
