"""POST /mailings/{id}/test: one message now, through the fake provider over HTTP, from the API
process; recorded apart from the mailing's messages and statistics."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.logging import configure_logging
from tests.api import MAILINGS, Api
from tests.conftest import API_TOKEN
from tests.mailings.test_mailings_api import MISSING_ID, create
from tests.problems import assert_problem

PHONE = "79161234567"


@pytest.fixture
def settings(settings: Settings, fake_provider: RunningFakeProvider) -> Settings:
    return replace(settings, provider_url=fake_provider.base_url, provider_timeout_s=2, log_level="INFO")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield test_client


async def _test_sends(db: AsyncSession) -> list[Any]:
    rows = list(await db.execute(text("SELECT * FROM test_sends ORDER BY id")))
    await db.rollback()
    return rows


async def test_one_message_goes_to_the_provider_now_outside_the_statistics(
    api: Api, db: AsyncSession, fake_provider: RunningFakeProvider, settings: Settings
) -> None:
    log = io.StringIO()
    configure_logging(settings, stream=log)
    mailing = await create(api, text="Winter sale: -20%")

    response = await api.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["sent"] is True
    assert (answer["outcome"], answer["status_code"], answer["error"]) == ("sent", 200, None)
    assert (answer["mailing_id"], answer["phone"], answer["text"]) == (mailing["id"], PHONE, "Winter sale: -20%")
    assert (answer["encoding"], answer["parts"]) == ("GSM-7", 1)
    # Its msgId comes from a range no message of a mailing ever reaches.
    assert answer["id"] >= 2**62
    record = fake_provider.message(answer["id"])
    assert record is not None
    assert record.last_body == {"id": answer["id"], "phone": int(PHONE), "text": "Winter sale: -20%"}
    assert fake_provider.received().total_requests == 1
    stats = (await api.get(f"{MAILINGS}/{mailing['id']}/stats")).json()
    assert stats["total"] == 0
    assert (await api.get("/api/v1/messages")).json()["total"] == 0
    [row] = await _test_sends(db)
    assert (row.id, row.mailing_id, row.phone, row.outcome, row.status_code) == (
        answer["id"],
        mailing["id"],
        PHONE,
        "sent",
        200,
    )
    assert row.answered_at is not None
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    [sent] = [line for line in lines if line["event"] == "test message sent"]
    assert (sent["mailing_id"], sent["message_id"], sent["outcome"]) == (mailing["id"], answer["id"], "sent")
    assert PHONE not in log.getvalue(), "the phone is masked in the logs"


async def test_an_ad_hoc_text_is_sent_instead_of_the_mailings(api: Api, fake_provider: RunningFakeProvider) -> None:
    mailing = await create(api)

    answer = (await api.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE, "text": "Проверка 😀"})).json()

    assert answer["sent"] is True
    assert (answer["text"], answer["encoding"], answer["parts"]) == ("Проверка 😀", "UCS-2", 1)
    record = fake_provider.message(answer["id"])
    assert record is not None
    assert record.last_body["text"] == "Проверка 😀"
    assert (await api.get(f"{MAILINGS}/{mailing['id']}")).json()["text"] == mailing["text"]


@pytest.mark.parametrize(
    ("options", "outcome", "status_code", "error"),
    [
        pytest.param({"reject_rate": 1.0}, "permanent", 400, "HTTP 400", id="rejected"),
        pytest.param({"down": True}, "transient", 503, "HTTP 503", id="down"),
        pytest.param({"malformed_rate": 1.0, "seed": 1}, "transient", 200, "malformed", id="malformed"),
    ],
)
async def test_the_providers_refusal_is_the_answer(
    api: Api,
    db: AsyncSession,
    fake_provider: RunningFakeProvider,
    options: dict[str, Any],
    outcome: str,
    status_code: int,
    error: str,
) -> None:
    fake_provider.set_options(**options)
    mailing = await create(api)

    response = await api.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["sent"], answer["outcome"], answer["status_code"]) == (False, outcome, status_code)
    assert answer["error"].startswith(error)
    [row] = await _test_sends(db)
    assert (row.outcome, row.status_code) == (outcome, status_code)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"phone": "89161234567"}, "phone", id="phone-not-7"),
        pytest.param({"phone": "7916123456"}, "phone", id="phone-short"),
        pytest.param({"phone": 79161234567}, "phone", id="phone-a-number"),
        pytest.param({}, "phone", id="phone-missing"),
        pytest.param({"phone": PHONE, "text": ""}, "text", id="text-empty"),
        pytest.param({"phone": PHONE, "text": "   "}, "text", id="text-blank"),
        pytest.param({"phone": PHONE, "text": "x" * 1601}, "text", id="text-too-long"),
        pytest.param({"phone": PHONE, "priority": 1}, "priority", id="unknown-field"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_sent(
    api: Api, db: AsyncSession, fake_provider: RunningFakeProvider, body: dict[str, Any], field: str
) -> None:
    mailing = await create(api)

    assert_problem(await api.post(f"{MAILINGS}/{mailing['id']}/test", json=body), 400, field)

    assert fake_provider.received().total_requests == 0
    assert await _test_sends(db) == []


async def test_unknown_mailing_unknown_token(api: Api, db: AsyncSession, fake_provider: RunningFakeProvider) -> None:
    assert_problem(await api.post(f"{MAILINGS}/{MISSING_ID}/test", json={"phone": PHONE}), 404)
    assert_problem(await api.post(f"{MAILINGS}/0/test", json={"phone": PHONE}), 400, "mailing_id")
    mailing = await create(api)
    assert_problem(
        await api.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE}, headers={"Authorization": ""}), 401
    )
    assert fake_provider.received().total_requests == 0
    assert await _test_sends(db) == []


async def test_a_held_provider_is_a_503_with_retry_after(
    api: Api, db: AsyncSession, fake_provider: RunningFakeProvider
) -> None:
    # Another worker met a 429 asking for a minute: the test send does not jump the queue.
    await db.execute(text("UPDATE provider_rate_budget SET blocked_until = now() + interval '1 minute'"))
    await db.commit()
    mailing = await create(api)

    response = await api.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE})

    assert_problem(response, 503)
    assert 50 <= int(response.headers["retry-after"]) <= 60
    assert fake_provider.received().total_requests == 0


async def test_a_rate_budget_without_room_within_the_timeout_is_a_503(
    settings: Settings, db: AsyncSession, fake_provider: RunningFakeProvider
) -> None:
    # One part a second, and the workers have spent the next minute and a half: no room within 2 s.
    limited = replace(settings, provider_rate_limit=1.0)
    await db.execute(text("UPDATE provider_rate_budget SET tokens = -90, refilled_at = now()"))
    await db.commit()
    async with AsyncTestClient(app=create_app(limited)) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        mailing = await create(client)

        response = await client.post(f"{MAILINGS}/{mailing['id']}/test", json={"phone": PHONE})

    assert_problem(response, 503)
    assert fake_provider.received().total_requests == 0
