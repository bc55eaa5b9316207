"""``/api/v1/providers`` and ``/api/v1/routes``: providers managed as data, their secrets sealed at
rest and never shown, every change audited."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.provider.secrets import SecretBox
from tests.api import API_TOKEN
from tests.problems import assert_problem

SECRET = "tok-4f9a7c1e-do-not-show"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def http_provider(**fields: Any) -> dict[str, Any]:
    return {"name": "main", "kind": "http", "settings": {"url": "http://127.0.0.1:9/v1"}, **fields}


@pytest.fixture
def keyed_settings(settings: Settings) -> Settings:
    return replace(settings, secret_key=(OLD_KEY,))


@pytest.fixture
async def keyed(keyed_settings: Settings) -> Any:
    async with AsyncTestClient(app=create_app(keyed_settings)) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield api


async def test_a_provider_is_added_read_replaced_and_removed_with_its_secret_write_only(
    keyed: AsyncTestClient[Litestar], db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    created = await keyed.post("/api/v1/providers", json=http_provider(secret=SECRET, rate_limit=50))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret_set"] is True
    assert "secret" not in body
    assert SECRET not in created.text
    provider_id = body["id"]

    listed = await keyed.get("/api/v1/providers")
    assert [p["name"] for p in listed.json()] == ["main"]
    assert SECRET not in listed.text

    # The raw column holds a sealed token, not the secret, and only the key opens it.
    stored = (await db.execute(text("SELECT secret FROM providers WHERE id = :id"), {"id": provider_id})).scalar_one()
    assert SECRET not in stored
    assert SecretBox((OLD_KEY,)).open(stored) == SECRET

    # Replaced without a secret: the stored one stays.
    replaced = await keyed.put(f"/api/v1/providers/{provider_id}", json=http_provider(enabled=False))
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["enabled"], replaced.json()["secret_set"]) == (False, True)
    # An empty secret removes it.
    cleared = await keyed.put(f"/api/v1/providers/{provider_id}", json=http_provider(secret=""))
    assert cleared.json()["secret_set"] is False

    again = await keyed.put(f"/api/v1/providers/{provider_id}", json=http_provider(secret=SECRET))
    assert again.json()["secret_set"] is True
    audit = (await db.execute(text("SELECT changes::text FROM audit_log WHERE entity = 'provider'"))).scalars().all()
    assert len(audit) == 4
    assert all(SECRET not in row for row in audit)
    assert any('"secret": {"new": "changed"' in row for row in audit), audit
    assert SECRET not in caplog.text

    assert (await keyed.delete(f"/api/v1/providers/{provider_id}")).status_code == 204
    assert (await keyed.get(f"/api/v1/providers/{provider_id}")).status_code == 404


async def test_a_secret_is_refused_when_no_key_is_set(client: AsyncTestClient[Litestar]) -> None:
    answer = await client.post("/api/v1/providers", json=http_provider(secret=SECRET))
    problem = assert_problem(answer, 400, "secret")
    assert "NOTIFICATION_SECRET_KEY" in problem["detail"]
    assert SECRET not in answer.text
    # Without a secret, a provider is stored all the same.
    assert (await client.post("/api/v1/providers", json=http_provider())).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (http_provider(settings={"url": "ftp://x"}), "settings.url"),
        (http_provider(settings={"url": "http://x", "token": SECRET}), "settings.token"),
        (http_provider(name="Bad Name"), "name"),
        (http_provider(rate_limit=0), "rate_limit"),
        ({"name": "smsc", "kind": "smpp", "settings": {"system_id": "me"}}, "settings.host"),
        ({"name": "smsc", "kind": "smpp", "settings": {"host": "h", "system_id": "me", "port": "x"}}, "settings.port"),
    ],
)
async def test_bad_provider_input_is_a_problem_naming_the_field(
    client: AsyncTestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/api/v1/providers", json=body)
    assert_problem(answer, 400, field)
    assert SECRET not in answer.text


async def test_a_second_provider_of_the_same_name_is_a_conflict(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.post("/api/v1/providers", json=http_provider())).status_code == 201
    assert_problem(await client.post("/api/v1/providers", json=http_provider()), 409, "name")


async def test_routes_are_replaced_as_a_whole_and_name_existing_providers(
    client: AsyncTestClient[Litestar], db: AsyncSession
) -> None:
    for name in ("a", "b"):
        assert (await client.post("/api/v1/providers", json=http_provider(name=name))).status_code == 201
    rules = [
        {"operator_codes": ["900", "901"], "providers": ["b", "a"]},
        {"phone_prefixes": ["7916"], "providers": ["a"]},
        {"providers": ["a"]},
    ]
    answer = await client.put("/api/v1/routes", json=rules)
    assert answer.status_code == 200, answer.text
    got = (await client.get("/api/v1/routes")).json()
    assert [(r["operator_codes"], r["phone_prefixes"], r["providers"]) for r in got] == [
        (["900", "901"], None, ["b", "a"]),
        (None, ["7916"], ["a"]),
        (None, None, ["a"]),
    ]
    assert_problem(await client.put("/api/v1/routes", json=[{"providers": ["a", "zz"]}]), 400, "[0].providers[1]")
    assert_problem(await client.put("/api/v1/routes", json=[{"operator_codes": ["9x0"], "providers": ["a"]}]), 400)
    # A provider a route names cannot go.
    first = (await client.get("/api/v1/providers")).json()[0]
    assert_problem(await client.delete(f"/api/v1/providers/{first['id']}"), 409, "id")
    rows = (await db.execute(text("SELECT action FROM audit_log WHERE entity = 'routes'"))).scalars().all()
    assert rows == ["update"]


async def test_a_rotated_key_list_still_opens_rows_sealed_with_the_old_key(
    keyed: AsyncTestClient[Litestar], db: AsyncSession
) -> None:
    created = await keyed.post("/api/v1/providers", json=http_provider(secret=SECRET))
    stored = (await db.execute(text("SELECT secret FROM providers"))).scalar_one()
    rotated = SecretBox((NEW_KEY, OLD_KEY))
    assert rotated.open(stored) == SECRET
    # The newest key seals from now on: the old key alone cannot open what it sealed.
    assert SecretBox((OLD_KEY,)).can_store
    resealed = rotated.seal(SECRET)
    assert SecretBox((NEW_KEY,)).open(resealed) == SECRET
    assert created.status_code == 201
