"""The directory's values with their number of clients, kept by triggers through every kind of change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import CLIENTS, Api, add_clients, create_client
from tests.problems import assert_problem

FACETS = "/api/v1/clients/facets"
CODES = "/api/v1/operator-codes"


async def facets(api: Api) -> tuple[dict[str, int], dict[str, tuple[str | None, int]]]:
    response = await api.get(FACETS)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    tags = {f["tag"]: f["clients"] for f in body["tags"]}
    codes = {f["code"]: (f["name"], f["clients"]) for f in body["operator_codes"]}
    return tags, codes


async def scanned(db: AsyncSession) -> tuple[dict[str, int], dict[str, int]]:
    tags = dict((await db.execute(text("SELECT tag, count(*) FROM clients GROUP BY tag"))).all())
    codes = dict((await db.execute(text("SELECT operator_code, count(*) FROM clients GROUP BY 1"))).all())
    await db.rollback()
    return tags, codes


async def test_facets_follow_inserts_updates_and_deletes(client: Api, db: AsyncSession) -> None:
    await add_clients(client, 3, tag="vip", operator_code="916")
    await add_clients(client, 2, tag="", operator_code="903")
    moved = await create_client(client, tag="vip", operator_code="903")
    await client.patch(f"{CLIENTS}/{moved['id']}", json={"tag": "gold", "operator_code": "916"})
    gone = await create_client(client, tag="once", operator_code="999")
    await client.delete(f"{CLIENTS}/{gone['id']}")
    # A set-based change of many rows at once, as imports and migrations make.
    await db.execute(text("UPDATE clients SET tag = 'bulk' WHERE operator_code = '903'"))
    await db.commit()

    tags, codes = await facets(client)
    scanned_tags, scanned_codes = await scanned(db)
    assert tags == scanned_tags == {"vip": 3, "gold": 1, "bulk": 2}
    assert {code: n for code, (_, n) in codes.items()} == scanned_codes == {"916": 4, "903": 2}

    await db.execute(text("TRUNCATE clients CASCADE"))
    await db.commit()
    assert await facets(client) == ({}, {})


async def test_operator_codes_carry_names(client: Api) -> None:
    await add_clients(client, 2, operator_code="916")
    named = await client.put(f"{CODES}/916", json={"name": "MTS"})
    assert named.status_code == 200, named.text
    await client.put(f"{CODES}/925", json={"name": "MegaFon"})
    _, codes = await facets(client)
    assert codes == {"916": ("MTS", 2), "925": ("MegaFon", 0)}
    assert (await client.get(CODES)).json() == [{"code": "916", "name": "MTS"}, {"code": "925", "name": "MegaFon"}]
    assert (await client.delete(f"{CODES}/925")).status_code == 204
    _, codes = await facets(client)
    assert codes == {"916": ("MTS", 2)}
    assert_problem(await client.put(f"{CODES}/91", json={"name": "x"}), 400, "code")
    assert_problem(await client.put(f"{CODES}/916", json={"name": " "}), 400, "name")
    assert_problem(await client.delete(f"{CODES}/925"), 404)
    audit = (await client.get("/api/v1/audit", params={"entity": "operator code"})).json()["items"]
    assert len(audit) == 3
