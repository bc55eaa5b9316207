"""The console's webhooks page: an admin adds, changes, rotates and deletes endpoints, sees the new
secret once and each endpoint's recent deliveries and failures; a viewer sees the same, changes nothing."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.console_client import Console, become_viewer

FORM = {"url": "http://crm.internal:8080/hooks", "description": "CRM", "events": ["message.sent", "mailing.paused"]}


def _secret_on(page: str) -> str:
    found = re.search(r'<code id="secret">(whsec_[A-Za-z0-9+/=]+)</code>', page)
    assert found, page
    return found.group(1)


async def _with_deliveries(db: AsyncSession, endpoint_id: int) -> None:
    await db.execute(
        text(
            "INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload, attempts, last_status,"
            " last_error, delivered_at) VALUES"
            " (:e, 'message.sent', 'message:7', '{}', 1, 200, NULL, now()),"
            " (:e, 'message.sent', 'message:8', '{}', 3, 500, 'HTTP 500: crm says no', NULL)"
        ),
        {"e": endpoint_id},
    )
    await db.commit()


async def test_an_admin_manages_endpoints_and_sees_their_deliveries(console: Console, db: AsyncSession) -> None:
    empty = await console.get("/admin/webhooks")
    assert empty.status_code == 200
    assert "No webhook endpoint" in empty.text
    assert 'id="webhook-form"' in empty.text

    refused = await console.post("/admin/webhooks", {**FORM, "url": "ftp://crm.internal/x"})
    assert refused.status_code == 400
    assert 'id="error-url"' in refused.text
    assert (await db.scalar(text("SELECT count(*) FROM webhook_endpoints"))) == 0

    created = await console.post("/admin/webhooks", FORM)
    assert created.status_code == 200, created.text
    secret = _secret_on(created.text)
    endpoint_id = int(await db.scalar(text("SELECT id FROM webhook_endpoints")) or 0)
    await db.rollback()
    listed = await console.get("/admin/webhooks")
    assert "http://crm.internal:8080/hooks" in listed.text
    assert secret not in listed.text

    await _with_deliveries(db, endpoint_id)
    endpoint_page = await console.get(f"/admin/webhooks/{endpoint_id}")
    assert endpoint_page.status_code == 200
    assert secret not in endpoint_page.text
    assert "Failing deliveries (1)" in endpoint_page.text
    assert "HTTP 500: crm says no" in endpoint_page.text
    assert "Recent deliveries (2 kept)" in endpoint_page.text
    assert "msg_" in endpoint_page.text

    bad = await console.post(f"/admin/webhooks/{endpoint_id}", {**FORM, "events": ["message.read"]})
    assert bad.status_code == 400
    assert 'id="error-events"' in bad.text
    changed = await console.post(
        f"/admin/webhooks/{endpoint_id}", {**FORM, "events": ["message.failed"]}, follow_redirects=False
    )
    assert changed.status_code == 303
    events = await db.scalar(text("SELECT events FROM webhook_endpoints"))
    await db.rollback()
    assert events == ["message.failed"]

    rotated = await console.post(f"/admin/webhooks/{endpoint_id}/rotate-secret")
    assert rotated.status_code == 200
    assert _secret_on(rotated.text) != secret

    deleted = await console.post(f"/admin/webhooks/{endpoint_id}/delete", follow_redirects=False)
    assert deleted.status_code == 303
    assert (await db.scalar(text("SELECT count(*) FROM webhook_outbox"))) == 0
    audit = (await db.execute(text("SELECT action, via FROM audit_log WHERE entity = 'webhook' ORDER BY id"))).all()
    assert [tuple(row) for row in audit] == [
        ("create", "console"),
        ("update", "console"),
        ("rotate secret", "console"),
        ("delete", "console"),
    ]


async def test_a_viewer_sees_endpoints_and_deliveries_and_changes_nothing(console: Console, db: AsyncSession) -> None:
    created = await console.post("/admin/webhooks", FORM)
    assert created.status_code == 200
    endpoint_id = int(await db.scalar(text("SELECT id FROM webhook_endpoints")) or 0)
    await _with_deliveries(db, endpoint_id)
    await become_viewer(console, db)

    listed = await console.get("/admin/webhooks")
    assert listed.status_code == 200
    assert "http://crm.internal:8080/hooks" in listed.text
    assert 'id="webhook-form"' not in listed.text
    endpoint_page = await console.get(f"/admin/webhooks/{endpoint_id}")
    assert "HTTP 500: crm says no" in endpoint_page.text
    assert "<form" not in endpoint_page.text.split("<main", 1)[-1]
    for path in ("", f"/{endpoint_id}", f"/{endpoint_id}/rotate-secret", f"/{endpoint_id}/delete"):
        assert (await console.post(f"/admin/webhooks{path}", FORM)).status_code == 403
    assert (await db.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'webhook'"))) == 1
