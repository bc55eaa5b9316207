"""``/admin/providers``: providers and routes on the console; a secret typed in is never shown."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from tests.console_client import Console

SECRET = "pw-7be21f-console-never-shows"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, secret_key=(Fernet.generate_key().decode(),))


def provider_form(**fields: str) -> dict[str, str]:
    return {
        "name": "smsc",
        "kind": "smpp",
        "settings": '{"host": "127.0.0.1", "system_id": "acme"}',
        "secret": SECRET,
        "window": "50",
        "binds": "2",
        "enabled": "on",
        **fields,
    }


async def test_an_admin_adds_and_changes_a_provider_and_the_page_never_shows_its_secret(
    console: Console, db: AsyncSession
) -> None:
    added = await console.post("/admin/providers", provider_form(), follow_redirects=False)
    assert added.status_code == 303, added.text
    listing = await console.get("/admin/providers")
    assert "window 50, binds 2" in listing.text
    assert ">set<" in listing.text
    assert SECRET not in listing.text
    provider_id = (await db.execute(text("SELECT id FROM providers"))).scalar_one()
    edit = await console.get(f"/admin/providers/{provider_id}/edit")
    assert SECRET not in edit.text
    # Changed with the secret field left empty: disabled, the secret kept.
    changed = await console.post(
        f"/admin/providers/{provider_id}", provider_form(secret="", enabled=""), follow_redirects=False
    )
    assert changed.status_code == 303, changed.text
    row = (await db.execute(text("SELECT enabled, secret FROM providers"))).one()
    assert row.enabled is False
    assert row.secret is not None
    assert SECRET not in row.secret
    audit = (await db.execute(text("SELECT changes::text FROM audit_log WHERE entity = 'provider'"))).scalars().all()
    assert len(audit) == 2
    assert all(SECRET not in a for a in audit)


async def test_bad_input_shows_beside_its_field_without_the_secret(console: Console) -> None:
    answer = await console.post("/admin/providers", provider_form(settings='{"system_id": "acme"}'))
    assert answer.status_code == 400
    assert "settings.host" in answer.text
    assert SECRET not in answer.text
    bad_json = await console.post("/admin/providers", provider_form(settings="{not json"))
    assert bad_json.status_code == 400
    assert 'id="error-settings"' in bad_json.text or "settings: must be a JSON object" in bad_json.text


async def test_routes_are_edited_on_the_page(console: Console) -> None:
    await console.post("/admin/providers", provider_form(), follow_redirects=False)
    saved = await console.post(
        "/admin/providers/routes",
        {"routes": '[{"operator_codes": ["900"], "providers": ["smsc"]}]'},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert "operator codes 900 → smsc" in (await console.get("/admin/providers")).text
    refused = await console.post("/admin/providers/routes", {"routes": '[{"providers": ["nobody"]}]'})
    assert refused.status_code == 400
    assert "no provider named" in refused.text
