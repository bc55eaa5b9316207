"""Nothing on the suppression list is ever sent to, and no advertising to a client without consent,
whatever happens around it: random sequences of suppressions and their removal, consents revoked and
given, mailings of both kinds, re-plans, retries of failed messages, a schedule's occurrences and
test sends, with deliveries in between. The engine runs in this process (planning as the worker
plans, batches as the worker sends them) against the fake provider; after every step, each request
the provider received is checked against the model of who was suppressed and who consented then."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from procrastinate import App, PsycopgConnector

from notification.app import create_app
from notification.config import Settings
from notification.delivery.planning import plan_mailing
from notification.dev.fake_provider import RunningFakeProvider, serve_fake_provider
from notification.schedules.tasks import create_occurrences_now
from tests.api import API_TOKEN
from tests.delivery.observe import engine_in_process, rows

PHONES = [f"7916000{i:04d}" for i in range(8)]
TEST_SEND_IDS_FROM = 2**62
RESET = (
    "TRUNCATE clients, mailings, messages, suppressions, schedules, test_sends, inbound_messages,"
    " procrastinate_jobs, audit_log RESTART IDENTITY CASCADE"
)

phone_index = st.integers(0, len(PHONES) - 1)
steps = st.one_of(
    st.tuples(st.just("suppress"), phone_index),
    st.tuples(st.just("unsuppress"), phone_index),
    st.tuples(st.just("revoke"), phone_index),
    st.tuples(st.just("consent"), phone_index),
    st.tuples(st.just("mailing"), st.sampled_from(["service", "advertising"])),
    st.tuples(st.just("replan"), st.integers(0, 3)),
    st.tuples(st.just("retry"), st.integers(0, 3)),
    st.tuples(st.just("schedule"), st.sampled_from(["service", "advertising"])),
    st.tuples(st.just("test_send"), phone_index),
    st.tuples(st.just("deliver"), st.just(0)),
)


@dataclass
class Model:
    suppressed: set[str] = field(default_factory=set)
    consenting: set[str] = field(default_factory=lambda: set(PHONES[::2]))
    client_ids: dict[str, int] = field(default_factory=dict)
    mailings: list[int] = field(default_factory=list)
    checked: int = 0


async def _deliver(conn: psycopg.AsyncConnection[Any], delivery: Any) -> None:
    """Plans every mailing whose plan is due, as the worker's planning job does, then sends each batch."""
    due = await rows(
        conn.info.dsn,
        "SELECT id, plan_version FROM mailings WHERE planned_version < plan_version AND start_at <= now() ORDER BY id",
    )
    for mailing_id, version in due:
        async with conn.transaction():
            report = await plan_mailing(conn, mailing_id, version, 500)
        for batches in report.send_batches.values():
            for ids in batches:
                await delivery.send_batch(conn, mailing_id, version, ids)


def _check(model: Model, fake: RunningFakeProvider) -> None:
    arrivals = fake.arrivals()
    for arrival in arrivals[model.checked :]:
        phone = str(arrival.phone)
        assert phone not in model.suppressed, f"sent to suppressed {phone}: {arrival.text}"
        # A test send goes to the operator's own phone, whatever its consent (never to a suppressed one).
        if arrival.text.startswith("advertising") and arrival.msg_id < TEST_SEND_IDS_FROM:
            assert phone in model.consenting, f"advertising sent to {phone} without consent"
    model.checked = len(arrivals)


async def _step(
    step: tuple[str, Any], model: Model, client: AsyncTestClient[Litestar], conn: Any, delivery: Any
) -> None:
    what, arg = step
    now = dt.datetime.now(dt.UTC)
    if what in {"suppress", "unsuppress", "revoke", "consent", "test_send"}:
        phone = PHONES[arg]
    if what == "suppress" and phone not in model.suppressed:
        answer = await client.post("/api/v1/suppressions", json={"phone": phone, "reason": "complaint"})
        assert answer.status_code == 201, answer.text
        model.suppressed.add(phone)
    elif what == "unsuppress" and phone in model.suppressed:
        assert (await client.delete(f"/api/v1/suppressions/{phone}")).status_code == 204
        model.suppressed.discard(phone)
    elif what in {"revoke", "consent"}:
        change = (
            {"consent_revoked_at": now.isoformat()}
            if what == "revoke"
            else {"consent_given_at": now.isoformat(), "consent_revoked_at": None}
        )
        answer = await client.patch(f"/api/v1/clients/{model.client_ids[phone]}", json=change)
        assert answer.status_code == 200, answer.text
        if what == "revoke":
            model.consenting.discard(phone)
        else:
            model.consenting.add(phone)
    elif what == "mailing":
        body = {
            "text": f"{arg} {len(model.mailings)}",
            "kind": arg,
            "start_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "end_at": (now + dt.timedelta(hours=1)).isoformat(),
        }
        answer = await client.post("/api/v1/mailings", json=body)
        assert answer.status_code == 201, answer.text
        model.mailings.append(answer.json()["id"])
    elif what == "replan" and model.mailings:
        mailing_id = model.mailings[arg % len(model.mailings)]
        # A filter change plans it again: everyone still matches, so everyone may be added back.
        answer = await client.patch(f"/api/v1/mailings/{mailing_id}", json={"filter": {"tags": ["", "x"]}})
        assert answer.status_code == 200, answer.text
    elif what == "retry" and model.mailings:
        mailing_id = model.mailings[arg % len(model.mailings)]
        answer = await client.post(f"/api/v1/mailings/{mailing_id}/retry", json={"statuses": ["failed"]})
        assert answer.status_code == 200, answer.text
    elif what == "schedule":
        local = now.replace(second=0, microsecond=0, tzinfo=None)
        body = {
            "name": f"every hour {arg}",
            "text": f"{arg} schedule",
            "kind": arg,
            "rrule": "FREQ=HOURLY;COUNT=2",
            "starts": local.isoformat(timespec="minutes"),
            "timezone": "UTC",
            "duration_minutes": 50,
        }
        answer = await client.post("/api/v1/schedules", json=body)
        assert answer.status_code == 201, answer.text
        settings_ = client.app.state.settings
        await create_occurrences_now(settings_, App(connector=PsycopgConnector(conninfo="")))
    elif what == "test_send" and model.mailings:
        answer = await client.post(f"/api/v1/mailings/{model.mailings[0]}/test", json={"phone": phone})
        assert answer.status_code == (409 if phone in model.suppressed else 200), answer.text
    elif what == "deliver":
        await _deliver(conn, delivery)


async def _example(app: Litestar, conninfo: str, fake: RunningFakeProvider, program: list[tuple[str, Any]]) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(RESET)
    for database in app.plugins.get(SQLAlchemyPlugin).config:
        database.engine_instance = None
        database.session_maker = None
    fake.reset()
    model = Model()
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        for phone in PHONES:
            body = {"phone": phone, "timezone": "UTC"}
            if phone in model.consenting:
                body |= {"consent_given_at": "2026-01-01T00:00:00Z", "consent_source": "form"}
            model.client_ids[phone] = (await client.post("/api/v1/clients", json=body)).json()["id"]
        async with engine_in_process(app.state.settings, fake.base_url) as (delivery, conn):
            for step in [*program, ("deliver", 0)]:
                await _step(step, model, client, conn, delivery)
                _check(model, fake)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(steps, min_size=3, max_size=14))
# The sequences that need luck to be drawn, always tried: numbers that failed, then suppressed (or
# whose consent was revoked), retried.
@example(program=[("mailing", "service"), ("deliver", 0), *(("suppress", i) for i in range(len(PHONES))), ("retry", 0)])
@example(program=[("mailing", "advertising"), ("deliver", 0), *(("revoke", i) for i in range(0, 8, 2)), ("retry", 0)])
def test_nothing_on_the_suppression_list_is_ever_sent_to(
    settings: Settings, fake: RunningFakeProvider, program: list[tuple[str, Any]]
) -> None:
    asyncio.run(_example(_app(settings, fake), settings.psycopg_conninfo, fake, program))


_APPS: dict[str, Litestar] = {}


def _app(base: Settings, fake: RunningFakeProvider) -> Litestar:
    if fake.base_url not in _APPS:
        _APPS.clear()
        _APPS[fake.base_url] = create_app(replace(base, provider_url=fake.base_url, provider_timeout_s=2.0))
    return _APPS[fake.base_url]


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def fake() -> Any:
    # Two in five requests refused for good (400): failed messages for the retries to requeue.
    with serve_fake_provider() as provider:
        provider.set_options(reject_rate=0.4, seed=25)
        yield provider
