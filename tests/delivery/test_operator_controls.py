"""Pause, resume and retry with a real worker and the fake provider over HTTP: what the provider
receives, and when, is read from the fake's own record."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from litestar import Litestar
from psycopg import AsyncConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from notification.audit.models import Via
from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.delivery.queries import queries
from notification.dev.fake_provider import (
    FakeProviderOptions,
    RunningFakeProvider,
    create_fake_provider_app,
    get_fake_provider_state,
)
from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc
from notification.mailings.schemas import RetryRequest
from notification.mailings.services import MailingService
from tests.api import API_TOKEN, Api, add_clients, create_mailing, database_now, mailing_stats, utc_now
from tests.delivery.observe import (
    add_mailing,
    add_pending_messages,
    backends_waiting_for_a_lock,
    counts,
    insert_clients,
    jobs_left,
    rows,
)
from tests.delivery.test_delivery import _send_jobs_left
from tests.either_provider import SendingProvider
from tests.servers import serve_in_thread
from tests.waiting import wait_for
from tests.workers import WorkerProcess

# Slow enough that a pause lands mid-mailing and mid-batch: 10 requests in flight, 100 ms each, so
# each of the two batches running at once takes two seconds, and a third one waits in the queue;
# answers are written five at a time, so that the statistics show the progress.
# The README: no new request for a paused mailing starts later than about a quarter of a second after the answer.
PAUSE_BOUND = dt.timedelta(seconds=0.25)
PAUSE_HELD = dt.timedelta(seconds=3)
SLOW = {"SEND_BATCH_SIZE": "100", "PROVIDER_CONCURRENCY": "10", "WORKER_CONCURRENCY": "2", "RESULT_FLUSH_SIZE": "5"}


async def _post(client: Api, path: str, body: Any = None) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _workers_up(db: AsyncSession) -> int:
    count = await db.scalar(text("SELECT count(*) FROM procrastinate_workers"))
    await db.rollback()
    return int(count or 0)


def _requests_between(fake: RunningFakeProvider, start: dt.datetime, end: dt.datetime) -> list[int]:
    return [a.msg_id for a in fake.arrivals() if start < a.arrived_at < end]


@pytest.mark.parametrize("kind", ["http", "smpp"])
async def test_pause_mid_mailing_holds_for_seconds_then_resume_sends_everything_once(
    app: Litestar, settings: Settings, start_worker: Callable[..., WorkerProcess], kind: str
) -> None:
    """The API and the fake provider (or the fake SMSC, stored as the only provider) each serve on a
    thread of their own, so that the time the pause is answered and the time each request arrives
    are both taken as they happen."""
    await insert_clients(settings.psycopg_conninfo, 300)
    provider_app = create_fake_provider_app(FakeProviderOptions(latency_ms=100))
    async with AsyncExitStack() as stack:
        smsc = None
        if kind == "smpp":
            smsc = await stack.enter_async_context(serve_fake_smsc(FakeSmscOptions(latency_ms=100)))
        provider = SendingProvider(kind, get_fake_provider_state(provider_app), smsc)
        stats, during, resumed_at = await _pause_and_resume(app, settings, start_worker, provider_app, provider)

    assert stats["by_status"] == {"pending": 0, "sent": 300, "failed": 0, "expired": 0, "cancelled": 0}
    assert stats["mailing"]["status"] == "finished"
    ids = {m["id"] for m in stats["messages"]["items"]}
    assert provider.accepted_per_message() == dict.fromkeys(ids, 1), "each message accepted once"
    assert provider.requests_per_message() == dict.fromkeys(ids, 1), "each message asked once"
    after_resume = {r.msg_id for r in provider.requests() if r.arrived_at > resumed_at}
    assert len(after_resume) >= during["by_status"]["pending"], "the resume sent the rest"


async def _pause_and_resume(
    app: Litestar,
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    provider_app: Litestar,
    provider: SendingProvider,
) -> tuple[dict[str, Any], dict[str, Any], dt.datetime]:
    with serve_in_thread(provider_app) as provider_url, serve_in_thread(app) as api_url:
        async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as http:
            if provider.smsc is not None:
                smpp = {"host": "127.0.0.1", "port": provider.smsc.port, "system_id": "notification"}
                body = {"name": "smsc", "kind": "smpp", "settings": smpp, "window": 10}
                stored = await http.post("/api/v1/providers", json=body)
                assert stored.status_code == 201, stored.text
            worker = start_worker(PROVIDER_URL=f"{provider_url}/v1", **SLOW)
            await worker.ready()
            mailing = await create_mailing(http)
            url = f"/api/v1/mailings/{mailing['id']}"
            await wait_for(lambda: mailing_stats(http, mailing["id"]), lambda s: s["by_status"]["sent"] >= 20)
            await provider.know(settings.psycopg_conninfo, mailing["id"])

            paused = await _post(http, f"{url}/pause")
            answered_at = utc_now()
            assert paused["status"] == "paused"
            assert paused["paused_at"] is not None
            # Held for seconds with most of the audience pending and the worker up: without the pause,
            # requests would go on starting ten at a time all along.
            await wait_for(lambda: database_now(settings.psycopg_conninfo), lambda now: now > answered_at + PAUSE_HELD)
            during = await mailing_stats(http, mailing["id"])
            assert during["mailing"]["status"] == "paused"
            assert during["by_status"]["pending"] >= 100, "the pause must land mid-mailing"
            assert worker.process.poll() is None
            resumed_at = utc_now()
            late = [a for a in provider.requests() if answered_at + PAUSE_BOUND < a.arrived_at < resumed_at]
            assert late == [], f"{len(late)} requests arrived more than {PAUSE_BOUND} after the pause's answer"
            assert await jobs_left(settings.psycopg_conninfo, "delivery:send_messages") == 0
            assert await counts(settings.psycopg_conninfo, mailing["id"]) == during["by_status"]

            resumed = await _post(http, f"{url}/resume")
            assert resumed["status"] == "running"
            assert resumed["paused_at"] is None
            stats = await wait_for(
                lambda: mailing_stats(http, mailing["id"]), lambda s: s["by_status"]["sent"] == 300, timeout_s=60
            )
    return stats, during, resumed_at


async def test_pause_past_the_end_expires_the_rest_then_retry_with_a_new_end_sends_it(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 100)
    # 25 sends a second: four seconds for the lot, so the pause comes well before the last.
    fake_provider.set_options(latency_ms=200)
    start_worker(**(SLOW | {"PROVIDER_CONCURRENCY": "5"}))
    # The end is near: it counts from a worker that is up, not from one still importing.
    await wait_for(lambda: _workers_up(db), lambda up: up > 0)
    mailing = await create_mailing(client, end_at=(utc_now() + dt.timedelta(seconds=8)).isoformat())
    url = f"/api/v1/mailings/{mailing['id']}"
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] >= 10)

    await _post(client, f"{url}/pause")
    paused_at = utc_now()
    # The end still rules: what was pending when it passed is expired, and nothing was sent meanwhile.
    ended = await wait_for(
        lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["pending"] == 0, timeout_s=30
    )
    assert ended["mailing"]["status"] == "finished"
    assert ended["by_status"]["expired"] > 0
    assert ended["by_status"]["sent"] + ended["by_status"]["expired"] == 100
    assert _requests_between(fake_provider, paused_at + dt.timedelta(seconds=1), utc_now()) == []
    sent_before = {m["id"] for m in ended["messages"]["items"] if m["status"] == "sent"}

    refused = await client.post(f"{url}/resume")
    assert refused.status_code == 409
    assert refused.json()["errors"] == [{"field": "status", "message": refused.json()["errors"][0]["message"]}]
    assert "finished" in refused.json()["detail"]

    new_end = utc_now() + dt.timedelta(minutes=5)
    retried = await _post(client, f"{url}/retry", {"statuses": ["expired"], "end_at": new_end.isoformat()})
    assert retried["requeued"] == ended["by_status"]["expired"]
    assert dt.datetime.fromisoformat(retried["mailing"]["end_at"]) == new_end
    # Still paused: the retried messages wait for the resume.
    assert retried["mailing"]["status"] == "paused"
    await _post(client, f"{url}/resume")

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 100)
    assert stats["by_status"]["pending"] == 0
    received = fake_provider.received()
    assert all(count == 1 for count in received.accepted.values())
    assert sent_before <= set(received.accepted)
    assert all(received.requests[i] == 1 for i in sent_before), "a sent message is never retried"


async def test_retry_of_failed_messages_after_the_provider_stops_rejecting(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 10)
    fake_provider.set_options(reject_rate=1.0)
    first = start_worker()
    mailing = await create_mailing(client)
    url = f"/api/v1/mailings/{mailing['id']}"
    await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["failed"] == 10)
    first.stop()
    fake_provider.set_options(reject_rate=0.0)

    retried = await _post(client, f"{url}/retry", {"statuses": ["failed"]})
    assert retried["requeued"] == 10
    assert retried["mailing"]["status"] == "running"
    waiting = await mailing_stats(client, mailing["id"])
    assert waiting["by_status"]["pending"] == 10
    for message in waiting["messages"]["items"]:
        # Attempts are kept, and the last error stays until the next answer.
        assert message["attempts"] == 1
        assert message["last_error"].startswith("HTTP 400")

    start_worker()
    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 10)
    assert stats["by_status"]["failed"] == 0
    for message in stats["messages"]["items"]:
        assert message["attempts"] == 2
        assert message["last_error"] is None
    received = fake_provider.received()
    assert all(count == 2 for count in received.requests.values())
    assert all(count == 1 for count in received.accepted.values())
    # The batch job ends just after its answers are written.
    await wait_for(lambda: _send_jobs_left(db), lambda left: left == 0)


async def test_a_retry_and_a_batch_writing_its_answers_at_once_do_not_deadlock(
    engine: AsyncEngine, settings: Settings
) -> None:
    """A batch writing its answers holds its messages and, adding its mailing's first counter row of a
    kind, checks that row's foreign key against the mailing; a retry holding the mailing against that
    check while it waits for the batch's messages would deadlock with it (one of them aborted). The
    retry runs as the API runs it, its service on a session of its own."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 4)
    mailing_id = await add_mailing(db, start_at="now() - interval '1 minute'", end_at="now() + interval '1 hour'")
    ids = await add_pending_messages(db, mailing_id)
    await rows(
        db, "UPDATE messages SET status = 'failed', attempts = 1 WHERE id = ANY(%(ids)s) RETURNING id", {"ids": ids}
    )

    async with AsyncSession(engine) as session, await AsyncConnection.connect(db) as batch:
        mailings = MailingService(session=session)
        audit = AuditTrail(session, "api-token:test", Via.API)
        # The batch has locked the first of its messages when the retry starts...
        await batch.execute("SELECT id FROM messages WHERE id = %(id)s FOR UPDATE", {"id": ids[0]})
        retry = asyncio.create_task(mailings.retry_messages(mailing_id, RetryRequest(statuses=["failed"]), audit))
        await wait_for(lambda: backends_waiting_for_a_lock(db), lambda n: n == 1)
        # ...and records it sent: its mailing's first counter row of that status, as record_answers writes it.
        await batch.execute(
            queries["record_answers"],
            {
                "ids": [ids[0]],
                "statuses": ["sent"],
                "errors": [None],
                "error_kinds": [None],
                "due_ats": [None],
                "answered_ats": [utc_now()],
                "providers": [None],
                "provider_message_ids": [None],
                "encodings": [None],
                "parts": [None],
                "unattempted": [False],
            },
        )
        await batch.commit()
        _, requeued, replan = await asyncio.wait_for(retry, timeout=30)

    assert (requeued, replan) == (3, True), "every failed message but the one the batch sent"
    by_status = await counts(db, mailing_id)
    assert (by_status["pending"], by_status["sent"], by_status["failed"]) == (3, 1, 0)
