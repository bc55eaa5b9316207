"""Single sign-on under test: the app configured for the tests' own OpenID provider (tests/sso/oidc.py),
and the steps a browser takes through it, made with HTTP clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings, load_settings
from tests.conftest import API_TOKEN
from tests.console_client import Console
from tests.sso.oidc import CLIENT_ID, CLIENT_SECRET, FakeOpenIDProvider, running_provider
from tests.test_dev_command import data_dir, dev_runs  # noqa: F401  (the dev command's fixtures, shared)

ADMIN = "ops@example.com"
VIEWER_DOMAIN = "@viewers.example.com"


@pytest.fixture
def oidc() -> Iterator[FakeOpenIDProvider]:
    with running_provider() as provider:
        yield provider


def sso_settings(database_url: str, oidc: FakeOpenIDProvider, tmp_path: Path) -> Settings:
    """The service signing console users in at the tests' own OpenID provider."""
    return replace(
        load_settings({}),
        database_url=database_url,
        log_json=True,
        log_level="WARNING",
        api_tokens=(API_TOKEN,),
        sign_in_failures_allowed=1_000_000,
        data_dir=tmp_path,
        oidc_issuer=oidc.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        admin_emails=(ADMIN,),
        viewer_emails=(VIEWER_DOMAIN,),
    )


@pytest.fixture
def settings(database_url: str, oidc: FakeOpenIDProvider, tmp_path: Path) -> Settings:
    return sso_settings(database_url, oidc, tmp_path)


async def begin(console: Console, next_page: str = "/admin/clients") -> httpx.URL:
    """The console's answer to "Sign in with single sign-on": where it sends the browser."""
    started = await console.get(
        "/admin/sign-in/sso", params={"next": next_page, "timezone": "Europe/Moscow"}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    return httpx.URL(started.headers["location"])


async def authorize(authorization_url: httpx.URL) -> str:
    """The provider's answer to the browser: the callback it sends it back to."""
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(authorization_url)
    assert answer.status_code in {302, 303, 307}, answer.text
    return str(answer.headers["location"])


async def sign_in_through(console: Console) -> Any:
    return await console.get(await authorize(await begin(console)), follow_redirects=False)


async def stored_sessions(db: AsyncSession) -> list[dict[str, Any]]:
    rows = (await db.execute(text("SELECT data FROM console_sessions"))).scalars().all()
    await db.commit()
    return [json.loads(row) for row in rows]


async def audit_rows(db: AsyncSession) -> list[dict[str, Any]]:
    rows = (
        await db.execute(text("SELECT actor, via, action, entity, entity_id, changes FROM audit_log ORDER BY id"))
    ).mappings()
    found = [dict(row) for row in rows]
    await db.commit()
    return found
