"""A message from a phone posted by an HTTP provider over real HTTP, signed as its receipts are: a
stop word suppresses the sender and cancels what is pending for them, once however often it is
posted; a forged, misaddressed or malformed callback stores nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import replace

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from notification.config import Settings
from tests.api import API_TOKEN, create_client, create_mailing, utc_now
from tests.delivery.observe import rows

SECRET = "whsec_" + base64.b64encode(b"inbound-test-secret-of-32-bytes!").decode()
FORGER = "whsec_" + base64.b64encode(b"a-secret-the-provider-never-had!").decode()
INBOUND = "/api/v1/providers/default/inbound"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, provider_callback_secret=SECRET)


def _signed(body: str, secret: str = SECRET) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": "msg_inbound",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_inbound", now, body),
    }


async def _pending_mailing(api: httpx.AsyncClient, settings: Settings) -> int:
    """A mailing of tomorrow with a pending message for each client (as its plan will write them)."""
    start = utc_now() + dt.timedelta(days=1)
    mailing = await create_mailing(api, start_at=start.isoformat(), end_at=(start + dt.timedelta(hours=1)).isoformat())
    await rows(
        settings.psycopg_conninfo,
        "INSERT INTO messages (mailing_id, client_id) SELECT %(m)s, id FROM clients RETURNING id",
        {"m": mailing["id"]},
    )
    return int(mailing["id"])


async def test_a_stop_over_http_suppresses_the_sender_once_and_cancels_what_is_pending_for_them(
    settings: Settings, live_server: str
) -> None:
    db = settings.psycopg_conninfo
    async with httpx.AsyncClient(base_url=live_server, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        stopping = await create_client(api, phone="79161234567")
        staying = await create_client(api, phone="79161234568")
        mailing_id = await _pending_mailing(api, settings)
        body = json.dumps({"id": "mo-1", "phone": "+79161234567", "text": " Stop "})

        first = await api.post(INBOUND, content=body, headers=_signed(body))
        again = await api.post(INBOUND, content=body, headers=_signed(body))

    assert first.status_code == 202, first.text
    assert (first.json()["stop_word"], first.json()["suppressed"], first.json()["id"] is None) == (True, True, False)
    assert again.status_code == 202, again.text
    assert again.json() == {"id": None, "stop_word": True, "suppressed": False}
    assert await rows(db, "SELECT phone, reason, created_by FROM suppressions") == [
        ("79161234567", "stop_word", "inbound:default")
    ]
    assert await rows(db, "SELECT provider, phone, text, provider_message_id FROM inbound_messages") == [
        ("default", "+79161234567", " Stop ", "mo-1")
    ]
    assert sorted(
        await rows(db, "SELECT client_id, status, error_kind FROM messages WHERE mailing_id = %(m)s", {"m": mailing_id})
    ) == sorted([(stopping["id"], "cancelled", "suppressed"), (staying["id"], "pending", None)])


@pytest.mark.parametrize(
    ("path", "body", "secret", "status", "named"),
    [
        pytest.param(INBOUND, {"id": "mo-2", "phone": "79161234567", "text": "STOP"}, FORGER, 401, None, id="forged"),
        pytest.param(
            "/api/v1/providers/nobody/inbound",
            {"id": "mo-2", "phone": "79161234567", "text": "STOP"},
            SECRET,
            404,
            None,
            id="no-such-provider",
        ),
        pytest.param(INBOUND, {"id": "mo-2", "text": "STOP"}, SECRET, 400, "phone", id="no-sender"),
        pytest.param(INBOUND, {"id": "", "phone": "79161234567", "text": "STOP"}, SECRET, 400, "id", id="empty-id"),
    ],
)
async def test_a_forged_misaddressed_or_malformed_inbound_callback_stores_nothing(
    settings: Settings, live_server: str, path: str, body: dict[str, str], secret: str, status: int, named: str | None
) -> None:
    text = json.dumps(body)
    async with httpx.AsyncClient(base_url=live_server) as api:
        answer = await api.post(path, content=text, headers=_signed(text, secret))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if named is not None:
        assert [e["field"] for e in answer.json()["errors"]] == [named]
    assert SECRET not in answer.text
    assert await rows(settings.psycopg_conninfo, "SELECT count(*) FROM inbound_messages") == [(0,)]
    assert await rows(settings.psycopg_conninfo, "SELECT count(*) FROM suppressions") == [(0,)]
