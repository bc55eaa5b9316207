"""The suppression list, the inbound messages and a client's consent in the console: what the API
does, an admin does here, each refusal beside its field."""

from __future__ import annotations

import datetime as dt

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.inbound.service import receive_inbound
from tests.console_client import Console


async def _listed(db: AsyncSession) -> list[tuple[str, str, str]]:
    found = [(r[0], r[1], r[2]) for r in await db.execute(text("SELECT phone, reason, source FROM suppressions"))]
    await db.rollback()
    return sorted(found)


async def test_an_admin_adds_imports_exports_and_removes_numbers(console: Console, db: AsyncSession) -> None:
    refused = await console.post("/admin/suppressions", {"phone": "8916", "reason": "complaint", "source": ""})
    assert refused.status_code == 400
    assert 'class="field invalid"' in refused.text
    assert await _listed(db) == []

    added = await console.post("/admin/suppressions", {"phone": "79160000001", "reason": "complaint", "source": "t"})
    assert added.status_code in {200, 303}, added.text
    again = await console.post("/admin/suppressions", {"phone": "79160000001", "reason": "complaint", "source": "t"})
    assert again.status_code == 409
    uploaded = await console.upload("/admin/suppressions/import", b"phone,reason\n79160000002,stop_word\n")
    assert uploaded.status_code in {200, 303}, uploaded.text
    bad = await console.upload("/admin/suppressions/import", b"phone\n7916\n")
    assert bad.status_code == 400
    assert "line 2" in bad.text
    assert await _listed(db) == [("79160000001", "complaint", "t"), ("79160000002", "stop_word", "")]

    page = (await console.get("/admin/suppressions", params={"reason": "stop_word"})).text
    assert "79160000002" in page
    assert "79160000001" not in page
    exported = (await console.get("/admin/suppressions/export")).text
    assert exported.count("\n") == 3

    removed = await console.post("/admin/suppressions/79160000001/delete", {})
    assert removed.status_code in {200, 303}, removed.text
    assert await _listed(db) == [("79160000002", "stop_word", "")]


async def test_inbound_messages_are_listed(console: Console, settings: Settings) -> None:
    now = dt.datetime.now(dt.UTC)
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await receive_inbound(conn, settings, "smsc", "79161234567", "When does the sale end?", now)
        await receive_inbound(conn, settings, "smsc", "79161234568", "STOP", now)
    everything = (await console.get("/admin/inbound")).text
    assert "When does the sale end?" in everything
    others = (await console.get("/admin/inbound", params={"show": "other"})).text
    assert "When does the sale end?" in others
    assert "79161234568" not in others


async def test_a_clients_consent_is_set_in_its_form_and_shown_in_the_list(console: Console, db: AsyncSession) -> None:
    form = {
        "phone": "79161230009",
        "timezone": "Europe/Moscow",
        "tag": "",
        "operator_code": "",
        "attributes": "",
        "consent_given_at": "2026-11-01T10:00",
        "consent_source": "shop",
        "consent_revoked_at": "",
    }
    created = await console.post("/admin/clients", form)
    assert created.status_code in {200, 303}, created.text
    stored = (
        await db.execute(text("SELECT consent_given_at, consent_source FROM clients WHERE phone = '79161230009'"))
    ).one()
    await db.rollback()
    # Read in the operator's zone (Moscow, UTC+3).
    assert stored == (dt.datetime(2026, 11, 1, 7, 0, tzinfo=dt.UTC), "shop")
    listed = (await console.get("/admin/clients", params={"phone_prefix": "79161230009"})).text
    assert "(shop)" in listed
