"""A stored provider's receipt callback secret: write-only, sealed at rest, never shown or audited
as itself, and the one its callbacks are verified with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from litestar import Litestar
from litestar.testing import AsyncTestClient

from notification.app import create_app
from notification.config import Settings
from tests.api import API_TOKEN
from tests.delivery.observe import rows
from tests.receipts.test_http_receipts import OTHER_SECRET, SECRET, _signed

KEY = Fernet.generate_key().decode()


@pytest.fixture
async def keyed(settings: Settings) -> Any:
    async with AsyncTestClient(app=create_app(replace(settings, secret_key=(KEY,)))) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield api


async def test_a_callback_secret_is_write_only_sealed_and_verifies_that_providers_callbacks(
    keyed: AsyncTestClient[Litestar], settings: Settings
) -> None:
    body = {"name": "main", "kind": "http", "settings": {"url": "http://127.0.0.1:9/v1"}}
    weak = await keyed.post("/api/v1/providers", json={**body, "callback_secret": "whsec_c2hvcnQ="})
    assert weak.status_code == 400
    assert "callback_secret" in weak.text
    created = await keyed.post("/api/v1/providers", json={**body, "callback_secret": SECRET})
    assert created.status_code == 201, created.text
    assert created.json()["callback_secret_set"] is True
    db = settings.psycopg_conninfo
    stored = await rows(db, "SELECT callback_secret FROM providers")
    assert stored[0][0]
    assert SECRET not in stored[0][0]
    audit = await rows(db, "SELECT changes::text FROM audit_log")
    assert SECRET not in str(audit)
    listed = await keyed.get("/api/v1/providers")
    assert SECRET not in listed.text
    receipt = '{"id": 1, "status": "delivered"}'
    path = "/api/v1/providers/main/receipts"
    forged = await keyed.post(path, content=receipt, headers=_signed(receipt, OTHER_SECRET))
    assert forged.status_code == 401
    # Signed right, for a message that does not exist: past the signature, refused by what it names.
    signed = await keyed.post(path, content=receipt, headers=_signed(receipt))
    assert signed.status_code == 404
    assert "msgId 1" in signed.json()["detail"]
    pid = created.json()["id"]
    cleared = await keyed.put(f"/api/v1/providers/{pid}", json={**body, "callback_secret": ""})
    assert cleared.json()["callback_secret_set"] is False
    refused = await keyed.post(path, content=receipt, headers=_signed(receipt))
    assert refused.status_code == 401
