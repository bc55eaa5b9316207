"""``/api/v1/webhooks``: endpoints managed in the API, their secret made by the service and shown once,
sealed at rest, never in a log, an audit row or a later answer; bad input named by field."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.provider.secrets import SecretBox
from tests.api import API_TOKEN, Api
from tests.problems import assert_problem
from tests.webhooks.conftest import KEY

WEBHOOKS = "/api/v1/webhooks"


def endpoint(**fields: Any) -> dict[str, Any]:
    return {"url": "http://10.0.0.7:8080/hooks", "events": ["message.sent", "mailing.finished"], **fields}


async def test_an_endpoint_is_added_with_its_secret_shown_once_then_replaced_rotated_and_removed(
    client: Api, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    created = await client.post(WEBHOOKS, json=endpoint(description="CRM"))
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert body["events"] == ["mailing.finished", "message.sent"]
    webhook_id = body["id"]

    # Shown once: no later answer carries it, and the column holds it sealed under the key.
    for answer in (await client.get(WEBHOOKS), await client.get(f"{WEBHOOKS}/{webhook_id}")):
        assert answer.status_code == 200
        assert secret not in answer.text
        assert "secret" not in answer.text
    stored = (await db.execute(text("SELECT secret FROM webhook_endpoints"))).scalar_one()
    assert secret not in stored
    assert SecretBox((KEY,)).open(stored) == secret

    replaced = await client.put(f"{WEBHOOKS}/{webhook_id}", json=endpoint(events=["message.failed"], enabled=False))
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["events"], replaced.json()["enabled"]) == (["message.failed"], False)
    await db.rollback()
    assert (
        SecretBox((KEY,)).open((await db.execute(text("SELECT secret FROM webhook_endpoints"))).scalar_one()) == secret
    )

    rotated = await client.post(f"{WEBHOOKS}/{webhook_id}/rotate-secret")
    assert rotated.status_code == 201, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    await db.rollback()
    sealed = (await db.execute(text("SELECT secret FROM webhook_endpoints"))).scalar_one()
    assert SecretBox((KEY,)).open(sealed) == new_secret

    assert (await client.delete(f"{WEBHOOKS}/{webhook_id}")).status_code == 204
    assert (await client.get(f"{WEBHOOKS}/{webhook_id}")).status_code == 404

    await db.rollback()
    audit = (
        await db.execute(text("SELECT action, changes::text FROM audit_log WHERE entity = 'webhook' ORDER BY id"))
    ).all()
    assert [row[0] for row in audit] == ["create", "update", "rotate secret", "delete"]
    assert all(secret not in row[1] and new_secret not in row[1] for row in audit)
    assert '"secret": {"new": "changed"' in audit[0][1]
    assert '"secret": {"new": "changed"' in audit[2][1]
    assert secret not in caplog.text
    assert new_secret not in caplog.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(endpoint(url="ftp://crm.example.com/x"), "url", id="not-http"),
        pytest.param(endpoint(url="https://user:pw@crm.example.com/x"), "url", id="credentials"),
        pytest.param(endpoint(url="https:///nohost"), "url", id="no-host"),
        pytest.param(endpoint(url="http://crm.example.com:99999/x"), "url", id="bad-port"),
        pytest.param(endpoint(events=[]), "events", id="no-events"),
        pytest.param(endpoint(events=["message.sent", "message.read"]), "events[1]", id="unknown-event"),
        pytest.param(endpoint(description="x" * 201), "description", id="long-description"),
        pytest.param({"events": ["message.sent"]}, "url", id="missing-url"),
        pytest.param(endpoint(secret="whsec_mine"), "secret", id="secret-is-not-chosen"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field_and_stores_nothing(
    client: Api, db: AsyncSession, body: dict[str, Any], field: str
) -> None:
    assert_problem(await client.post(WEBHOOKS, json=body), 400, field)
    assert (await db.execute(text("SELECT count(*) FROM webhook_endpoints"))).scalar_one() == 0
    assert (await db.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() == 0


async def test_a_replace_with_bad_input_changes_nothing(client: Api) -> None:
    created = (await client.post(WEBHOOKS, json=endpoint())).json()
    assert_problem(await client.put(f"{WEBHOOKS}/{created['id']}", json=endpoint(url="gopher://x")), 400, "url")
    assert (await client.get(f"{WEBHOOKS}/{created['id']}")).json()["url"] == endpoint()["url"]
    assert_problem(await client.put(f"{WEBHOOKS}/{created['id'] + 1}", json=endpoint()), 404)


async def test_without_a_secret_key_no_endpoint_can_be_added(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(replace(settings, secret_key=()))) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        problem = assert_problem(await api.post(WEBHOOKS, json=endpoint()), 400, "secret")
        assert "NOTIFICATION_SECRET_KEY" in problem["detail"]
        assert (await api.get(WEBHOOKS)).json() == []


async def test_deliveries_of_an_unknown_endpoint_are_a_404_and_a_bad_state_a_400(client: Api) -> None:
    assert_problem(await client.get(f"{WEBHOOKS}/5/deliveries"), 404)
    created = (await client.post(WEBHOOKS, json=endpoint())).json()
    answer = await client.get(f"{WEBHOOKS}/{created['id']}/deliveries", params={"delivery_state": "lost"})
    assert_problem(answer, 400, "delivery_state")
    page = (await client.get(f"{WEBHOOKS}/{created['id']}/deliveries")).json()
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}
