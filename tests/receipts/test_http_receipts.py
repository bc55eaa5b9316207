"""Receipts over real HTTP: the fake provider posts signed callbacks to the API served on a port,
real worker processes send."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import API_TOKEN, create_mailing, utc_now
from tests.delivery.observe import insert_clients, rows
from tests.receipts.test_smpp_receipts import _counters_agree
from tests.waiting import wait_for
from tests.workers import WorkerProcess

Api = AsyncTestClient[Litestar]
SECRET = "whsec_" + base64.b64encode(b"receipts-test-secret-32-bytes!!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-providers-secret-at-all!").decode()
CALLBACK = "/api/v1/providers/default/receipts"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, provider_callback_secret=SECRET)


def _api(live_server: str) -> httpx.AsyncClient:
    """The API over the same real HTTP the callbacks arrive by (the app runs once, in its server)."""
    return httpx.AsyncClient(base_url=live_server, headers={"Authorization": f"Bearer {API_TOKEN}"})


def _signed(body: str, secret: str = SECRET, at: dt.datetime | None = None) -> dict[str, str]:
    moment = at or dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "webhook-id": "msg_test",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_test", moment, body),
    }


async def _states(db: str, mailing_id: int) -> dict[int, tuple[str, str | None, str | None]]:
    found = await rows(
        db,
        "SELECT id, status, delivery_state, delivery_error FROM messages WHERE mailing_id = %(m)s",
        {"m": mailing_id},
    )
    return {i: (status, state, error) for i, status, state, error in found}


async def test_signed_callbacks_delivered_undelivered_duplicated_and_out_of_order_are_each_applied_once(
    settings: Settings,
    live_server: str,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    db = settings.psycopg_conninfo
    fake_provider.set_options(
        receipts_url=live_server + CALLBACK,
        receipts_secret=SECRET,
        receipt_delay_ms=50,
        undelivered_rate=0.3,
        duplicate_rate=0.5,
        out_of_order=True,
        seed=23,
    )
    await insert_clients(db, 30)
    start_worker()
    async with _api(live_server) as api:
        mailing = await create_mailing(api)
    states = await wait_for(
        lambda: _states(db, mailing["id"]),
        lambda s: len(s) == 30 and all(state is not None for _, state, _ in s.values()),
        timeout_s=30,
    )
    posts = fake_provider.receipt_posts()
    expected: dict[int, tuple[str, str | None, str | None]] = {}
    for post in posts:
        for msg_id, state in zip(post.msg_ids, post.states, strict=True):
            expected.setdefault(msg_id, ("sent", state, "001" if state == "undelivered" else None))
    assert states == expected
    assert len(posts) > 30, "no duplicate was posted"
    await wait_for(lambda: _post_statuses(fake_provider), lambda statuses: statuses == {202}, timeout_s=10)
    await _counters_agree(db)


async def _post_statuses(fake: RunningFakeProvider) -> set[int | None]:
    return {post.status for post in fake.receipt_posts()}


async def test_a_forged_or_unmatched_callback_is_refused_and_changes_nothing(
    settings: Settings, live_server: str
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 1)
    found = await rows(
        db,
        "INSERT INTO mailings (text, encoding, parts, start_at, end_at, filter_operator_codes, filter_tags,"
        " plan_version, planned_version) VALUES ('Hi', 'GSM-7', 1, now() - interval '1 hour',"
        " now() + interval '1 hour', '{}', '{}', 1, 1) RETURNING id",
    )
    message = await rows(
        db,
        "INSERT INTO messages (mailing_id, client_id, status, sent_at, provider)"
        " SELECT %(m)s, id, 'sent', now(), 'default' FROM clients RETURNING id",
        {"m": found[0][0]},
    )
    message_id = message[0][0]
    body = f'{{"id": {message_id}, "status": "delivered"}}'
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    attempts = {
        "another secret": (CALLBACK, _signed(body, OTHER_SECRET), body),
        "no signature": (CALLBACK, {"content-type": "application/json"}, body),
        "ten minutes old": (CALLBACK, _signed(body, at=old), body),
        "signature malformed": (CALLBACK, {**_signed(body), "webhook-signature": "v1=garbage"}, body),
        "signature not base64": (CALLBACK, {**_signed(body), "webhook-signature": "v1,***"}, body),
        "body changed": (CALLBACK, _signed(body), body.replace("delivered", "undelivered")),
        "unknown provider": ("/api/v1/providers/nobody/receipts", _signed(body), body),
    }
    async with httpx.AsyncClient(base_url=live_server) as http:
        answers = {
            name: (await http.post(path, content=content, headers=headers))
            for name, (path, headers, content) in attempts.items()
        }
        unknown_body = '[{"id": 999999, "status": "delivered"}, ' + body + "]"
        unknown = await http.post(CALLBACK, content=unknown_body, headers=_signed(unknown_body))
        invalid_body = f'{{"id": {message_id}, "status": "maybe"}}'
        invalid = await http.post(CALLBACK, content=invalid_body, headers=_signed(invalid_body))
        assert await _states_of(db, message_id) == ("sent", None)
        accepted = await http.post(CALLBACK, content=body, headers=_signed(body))
        again = await http.post(CALLBACK, content=body, headers=_signed(body))
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {name: 404 if name == "unknown provider" else 401 for name in attempts}
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in answers.values())
    assert "nobody" in answers["unknown provider"].json()["detail"]
    assert (unknown.status_code, unknown.json()["detail"]) == (
        404,
        "no message has the msgId 999999: nothing was stored",
    )
    assert invalid.status_code == 400
    assert "status" in invalid.text
    assert (accepted.status_code, accepted.json()) == (202, {"received": 1, "decided": 1, "already_decided": 0})
    assert (again.status_code, again.json()) == (202, {"received": 1, "decided": 0, "already_decided": 1})
    assert await _states_of(db, message_id) == ("sent", "delivered")
    assert SECRET not in str([r.text for r in answers.values()])


async def _states_of(db: str, message_id: int) -> tuple[str, str | None]:
    found = await rows(db, "SELECT status, delivery_state FROM messages WHERE id = %(id)s", {"id": message_id})
    return found[0][0], found[0][1]


async def test_a_message_expired_after_its_requests_timed_out_then_delivered_is_sent_and_delivered(
    settings: Settings,
    live_server: str,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    db = settings.psycopg_conninfo
    # Every request held 8 s, beyond the worker's 2 s timeout and the mailing's end: the ledger
    # expires the message; the provider, which took it all the same, then reports it delivered.
    fake_provider.set_options(hang_rate=1, hang_s=8, receipts_url=live_server + CALLBACK, receipts_secret=SECRET)
    await insert_clients(db, 1)
    start_worker()
    end_at = utc_now() + dt.timedelta(seconds=3)
    async with _api(live_server) as api:
        mailing = await create_mailing(api, end_at=end_at.isoformat())
    expired = await wait_for(
        lambda: _states(db, mailing["id"]), lambda s: [v[0] for v in s.values()] == ["expired"], timeout_s=15
    )
    assert [v[1] for v in expired.values()] == [None]
    final = await wait_for(
        lambda: _states(db, mailing["id"]),
        lambda s: [v[:2] for v in s.values()] == [("sent", "delivered")],
        timeout_s=15,
    )
    assert list(final.values()) == [("sent", "delivered", None)]
    sent_at = await rows(db, "SELECT sent_at FROM messages WHERE mailing_id = %(m)s", {"m": mailing["id"]})
    assert sent_at[0][0] <= end_at
    await _counters_agree(db)
