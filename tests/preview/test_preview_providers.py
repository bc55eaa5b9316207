"""The audience preview's split over providers: each matching client counted under the provider its
first attempt goes to, as the router the workers use decides it client by client."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.provider.routes import rule_of, stored_router
from tests.api import API_TOKEN, MAILINGS, Api
from tests.console_client import Console
from tests.mailings.test_mailings_api import create
from tests.preview.test_preview import PREVIEW, _body

CODES = ("916", "903", "925", "901")
# Prefixes nested in one another (7903 inside 79031) and some nobody's phone starts with.
PREFIXES = ("7903", "79031", "791", "7999")


async def _seed(db: AsyncSession, count: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [
        {
            "phone": f"7{rng.choice(('903', '9031', '916', '925'))}{rng.randrange(10**7):07d}"[:11],
            "operator_code": rng.choice(CODES),
            "tag": rng.choice(("", "vip")),
        }
        for _ in range(count)
    ]
    unique = list({row["phone"]: row for row in rows}.values())
    await db.execute(
        text("INSERT INTO clients (phone, operator_code, tag, timezone) VALUES (:phone, :operator_code, :tag, 'UTC')"),
        unique,
    )
    await db.commit()
    return [(row["operator_code"], row["phone"]) for row in unique if row["tag"] == "vip"]


async def _provider(client: Api, name: str, *, enabled: bool = True) -> None:
    body = {"name": name, "kind": "http", "settings": {"url": "http://127.0.0.1:9/v1"}, "enabled": enabled}
    response = await client.post("/api/v1/providers", json=body)
    assert response.status_code == 201, response.text


async def _routes(client: Api, routes: list[dict[str, Any]]) -> None:
    response = await client.put("/api/v1/routes", json=routes)
    assert response.status_code == 200, response.text


def _split(body: dict[str, Any]) -> dict[str | None, int]:
    return {share["name"]: share["clients"] for share in body["providers"]}


async def test_without_stored_providers_everyone_goes_to_the_settings_provider(client: Api, db: AsyncSession) -> None:
    vip = await _seed(db, 60)

    body = (await client.post(PREVIEW, json=_body(filter={"tags": ["vip"]}, send_window=None))).json()

    assert body["providers"] == [{"name": "default", "clients": len(vip)}]


async def test_the_split_equals_the_router_deciding_client_by_client(client: Api, db: AsyncSession) -> None:
    vip = await _seed(db, 400)
    for name in ("smsc", "aggregator", "backup"):
        await _provider(client, name)
    await _provider(client, "off", enabled=False)
    routes: list[dict[str, Any]] = [
        {"phone_prefixes": ["79031"], "providers": ["off", "smsc"]},
        {"phone_prefixes": ["7903", "7999"], "providers": ["backup"]},
        {"operator_codes": ["925"], "providers": ["off"]},  # matches, but nobody enabled takes them
        {"phone_prefixes": ["791"], "providers": ["aggregator"]},
    ]
    await _routes(client, routes)

    body = (await client.post(PREVIEW, json=_body(filter={"tags": ["vip"]}, send_window=None))).json()

    # The slow, obvious way: the router on each client's own phone; the first enabled provider
    # ("smsc") takes what no rule matches.
    router = stored_router(
        [("smsc", True), ("aggregator", True), ("backup", True), ("off", False)],
        [rule_of(r.get("operator_codes"), r.get("phone_prefixes"), r["providers"]) for r in routes],
    )
    expected = Counter(router.first_choice(code, phone) for code, phone in vip)
    assert _split(body) == dict(expected)
    assert set(expected) == {"smsc", "backup", "aggregator", None}, expected
    assert sum(_split(body).values()) == body["clients"] == len(vip)
    shares = [share["clients"] for share in body["providers"]]
    assert shares == sorted(shares, reverse=True)


async def test_operator_code_rules_alone_split_from_the_rollup(client: Api, db: AsyncSession) -> None:
    vip = await _seed(db, 200)
    await _provider(client, "smsc")
    await _provider(client, "aggregator")
    await _routes(client, [{"operator_codes": ["916", "903"], "providers": ["aggregator"]}])

    body = (await client.post(PREVIEW, json=_body(filter={"tags": ["vip"]}, send_window=None))).json()

    to_aggregator = sum(1 for code, _ in vip if code in {"916", "903"})
    assert _split(body) == {"aggregator": to_aggregator, "smsc": len(vip) - to_aggregator}


async def test_an_existing_mailing_and_the_console_show_the_split(console: Console, db: AsyncSession) -> None:
    vip = await _seed(db, 80)
    api = console.client
    api.headers["Authorization"] = f"Bearer {API_TOKEN}"
    await _provider(api, "smsc")
    mailing = await create(api, **_body(filter={"tags": ["vip"]}, send_window=None))

    body = (await api.get(f"{MAILINGS}/{mailing['id']}/preview")).json()
    del api.headers["Authorization"]
    page = await console.get(f"/admin/mailings/{mailing['id']}/preview", headers={"HX-Request": "true"})

    assert body["providers"] == [{"name": "smsc", "clients": len(vip)}]
    assert page.status_code == 200
    assert 'id="preview-providers"' in page.text
    assert "<td>smsc</td>" in page.text
