"""The console's side of personalised texts: a client's attributes as name=value lines, edited and
refused beside their field; a mailing's template error beside its text; the preview's distribution;
an attribute filter kept across a save; viewers see attributes and change none."""

from __future__ import annotations

import html as html_text
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import count_rows
from tests.conftest import API_TOKEN
from tests.console_client import Console, become_viewer, mailing_form

API = {"Authorization": f"Bearer {API_TOKEN}"}
CLIENT = {"phone": "79160000001", "timezone": "UTC", "tag": "", "operator_code": ""}


def _error_beside(page: str, field: str) -> str:
    found = re.search(rf'<div class="error" id="error-{re.escape(field)}">([^<]*)</div>', page)
    assert found, f"no error shown beside {field}"
    return html_text.unescape(found.group(1))


async def _attributes(db: AsyncSession) -> list[Any]:
    found = [row[0] for row in await db.execute(text("SELECT attributes FROM clients ORDER BY id"))]
    await db.commit()
    return found


async def test_a_client_s_attributes_are_added_shown_and_changed(console: Console, db: AsyncSession) -> None:
    added = await console.post(
        "/admin/clients", {**CLIENT, "attributes": "name = Анна\r\n\r\ncity=Kazan\r\n"}, follow_redirects=False
    )
    assert added.status_code == 303, added.text
    assert await _attributes(db) == [{"name": "Анна", "city": "Kazan"}]
    listing = await console.get("/admin/clients")
    assert ">name</span>=Анна" in listing.text

    client_id = (await db.execute(text("SELECT id FROM clients"))).scalar_one()
    await db.commit()
    form = await console.get(f"/admin/clients/{client_id}/edit")
    # Stored as jsonb, whose keys come back in its own order (shorter first, then bytewise).
    assert "city=Kazan\nname=Анна</textarea>" in form.text
    changed = await console.post(
        f"/admin/clients/{client_id}", {**CLIENT, "attributes": "name=Anna"}, follow_redirects=False
    )
    assert changed.status_code == 303, changed.text
    assert await _attributes(db) == [{"name": "Anna"}]


async def test_bad_attributes_are_refused_beside_their_field(console: Console, db: AsyncSession) -> None:
    for lines, message in [
        ("name=Anna\njust words", "line 2: write name=value"),
        ("tag=vip", "tag: must not be the name of a client field"),
    ]:
        refused = await console.post("/admin/clients", {**CLIENT, "attributes": lines})
        assert refused.status_code == 400, lines
        assert _error_beside(refused.text, "attributes").startswith(message), refused.text
    assert await count_rows(db, "clients") == 0


async def test_a_template_error_shows_beside_the_text(console: Console, db: AsyncSession) -> None:
    refused = await console.post("/admin/mailings", mailing_form(text="Hi {{ nmae }}"))
    assert refused.status_code == 400
    assert _error_beside(refused.text, "text").startswith("must use only known variables: 'nmae'")
    cost = await console.post("/admin/mailings/measure", {"text": "Hi {{ name"})
    assert "must be a valid template" in html_text.unescape(cost.text)
    assert await count_rows(db, "mailings") == 0


async def test_the_preview_shows_the_parts_per_recipient(console: Console) -> None:
    clients = [
        {"phone": f"7916000000{i}", "timezone": "UTC", "attributes": {"name": name, "city": "Kazan"}}
        for i, name in enumerate(["Anna", "Александра-Виктория Константиновна Преображенская-Долгорукова"])
    ]
    assert (await console.client.post("/api/v1/clients/bulk", json=clients, headers=API)).status_code == 201
    text_ = "{{ name }}, your order is ready for pickup at our shop on Main Street, open every day."
    preview = await console.post("/admin/mailings/preview", mailing_form(text=text_, filter_attributes="city=Kazan"))
    assert preview.status_code == 200, preview.text
    table = preview.text.split('id="preview-parts-distribution"', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', table)
    assert cells == [("1", "1"), ("3", "1")]
    assert 'id="preview-examples"' in preview.text


async def test_an_attribute_filter_is_kept_when_the_mailing_is_saved(console: Console, db: AsyncSession) -> None:
    saved = await console.post("/admin/mailings", mailing_form(filter_attributes="city=Kazan"), follow_redirects=False)
    assert saved.status_code == 303, saved.text
    mailing_id = int(saved.headers["location"].rsplit("/", 1)[1])
    form = await console.get(f"/admin/mailings/{mailing_id}/edit")
    assert "city=Kazan</textarea>" in form.text
    resaved = await console.post(
        f"/admin/mailings/{mailing_id}",
        mailing_form(text="Changed", filter_attributes="city=Kazan"),
        follow_redirects=False,
    )
    assert resaved.status_code == 303, resaved.text
    stored = (await db.execute(text("SELECT filter_attributes FROM mailings"))).scalar_one()
    await db.commit()
    assert stored == {"city": "Kazan"}


async def test_a_viewer_sees_attributes_and_changes_none(console: Console, db: AsyncSession) -> None:
    response = await console.client.post(
        "/api/v1/clients",
        json={"phone": CLIENT["phone"], "timezone": "UTC", "attributes": {"name": "Anna"}},
        headers=API,
    )
    assert response.status_code == 201
    await become_viewer(console, db)
    listing = await console.get("/admin/clients")
    assert ">name</span>=Anna" in listing.text
    assert (await console.get(f"/admin/clients/{response.json()['id']}/edit")).status_code == 403
    refused = await console.post(f"/admin/clients/{response.json()['id']}", {**CLIENT, "attributes": "name=Bob"})
    assert refused.status_code == 403
    assert await _attributes(db) == [{"name": "Anna"}]
