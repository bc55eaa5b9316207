"""Send windows end to end: planning moves each message to its client's local opening, the claim
and the last check before the request never send outside it, the statistics show who waits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.delivery.breaker import CircuitBreaker
from notification.delivery.claim import ClaimedMessage, FollowUp
from notification.delivery.policy import WindowClosed
from notification.delivery.senders import Lane, send_one
from notification.delivery.sending import Delivery
from notification.dev.fake_provider import RunningFakeProvider
from notification.jobs import create_connector
from notification.provider.rate_limit import RateBudget
from notification.provider.registry import ProviderRegistry
from notification.send_window import next_opening
from tests.api import Api, add_clients, create_mailing, database_now, mailing_stats, utc_now
from tests.provider_record import arrivals
from tests.waiting import wait_for
from tests.workers import WorkerProcess


def _hhmm(at: dt.datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%H:%M")


def _window(start: dt.datetime, end: dt.datetime, zone: str) -> dict[str, str]:
    """A window of local wall times in ``zone`` spanning the instants ``start`` to ``end``."""
    return {"start": _hhmm(start, zone), "end": _hhmm(end, zone)}


async def test_client_inside_the_window_is_sent_at_once(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 5, timezone="America/New_York")
    start_worker()
    now = utc_now()
    window = _window(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1), "America/New_York")
    mailing = await create_mailing(client, send_window=window)
    assert mailing["send_window"] == window

    stats = await wait_for(
        lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 5, timeout_s=30
    )
    assert stats["waiting_for_window"] == 0
    assert stats["next_window_opening"] is None
    assert fake_provider.received().total_accepted == 5


async def test_window_that_never_opens_before_end_at_expires_without_a_request(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 4, timezone="Asia/Vladivostok")
    start_worker()
    now = utc_now()
    # Opens in the clients' zone three hours from now, the mailing ends within the hour.
    window = _window(now + dt.timedelta(hours=3), now + dt.timedelta(hours=5), "Asia/Vladivostok")
    mailing = await create_mailing(client, send_window=window, end_at=(now + dt.timedelta(minutes=30)).isoformat())

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["expired"] == 4)
    assert stats["by_status"] == {"pending": 0, "sent": 0, "failed": 0, "expired": 4, "cancelled": 0}
    assert all(m["error_kind"] == "window_never_opens" for m in stats["messages"]["items"])
    assert all(m["attempts"] == 0 for m in stats["messages"]["items"])
    assert stats["waiting_for_window"] == 0
    assert fake_provider.received().total_requests == 0


async def test_client_waits_for_the_opening_of_its_local_window_then_is_sent(
    client: Api, db: AsyncSession, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Slow by nature: windows have minute resolution, so this one opens at the next full minute."""
    zone = "Asia/Kolkata"  # UTC+05:30: the window only works if read in the client's own zone
    waiting = await add_clients(client, 3, timezone=zone)
    late = await add_clients(client, 2, timezone="UTC")
    await start_worker().ready()
    # Taken once the worker is up, so its start-up does not eat into the 10 s before the opening.
    now = await database_now(db)
    opening = (now + dt.timedelta(seconds=70)).replace(second=0, microsecond=0)  # 10-70 s away
    window = _window(opening, opening + dt.timedelta(hours=2), zone)
    # In UTC the same wall times come 5.5 hours later: after the mailing's end.
    mailing = await create_mailing(client, send_window=window, end_at=(now + dt.timedelta(hours=1)).isoformat())

    def planned(s: dict[str, Any]) -> bool:
        return bool(s["waiting_for_window"] == 3 and s["by_status"]["expired"] == 2)

    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), planned, timeout_s=20)
    assert await database_now(db) < opening, "the planning must be seen before the opening"
    assert dt.datetime.fromisoformat(stats["next_window_opening"]) == opening
    by_client = {m["client_id"]: m for m in stats["messages"]["items"]}
    for c in waiting:
        message = by_client[c["id"]]
        assert message["status"] == "pending"
        assert dt.datetime.fromisoformat(message["due_at"]) == opening
    for c in late:
        assert by_client[c["id"]]["error_kind"] == "window_never_opens"
    assert fake_provider.received().total_requests == 0

    stats = await wait_for(
        lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 3, timeout_s=75
    )
    sent = {m["id"] for m in stats["messages"]["items"] if m["status"] == "sent"}
    assert sent == {by_client[c["id"]]["id"] for c in waiting}
    assert stats["waiting_for_window"] == 0
    assert stats["next_window_opening"] is None
    assert fake_provider.received().total_requests == 3
    # What the provider saw: one request per waiting client, none before its window opened.
    seen = await arrivals(fake_provider, sent)
    assert all(len(requests) == 1 for requests in seen.values())
    assert all(requests[0].arrived_at >= opening for requests in seen.values())
    assert {requests[0].phone for requests in seen.values()} == {int(c["phone"]) for c in waiting}


async def test_removing_the_window_sends_the_waiting_messages_at_once(
    client: Api, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    await add_clients(client, 4, timezone="Europe/Berlin")
    start_worker()
    now = utc_now()
    window = _window(now + dt.timedelta(hours=2), now + dt.timedelta(hours=3), "Europe/Berlin")
    mailing = await create_mailing(client, send_window=window, end_at=(now + dt.timedelta(hours=4)).isoformat())
    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["waiting_for_window"] == 4)
    assert dt.datetime.fromisoformat(stats["next_window_opening"]) > now + dt.timedelta(hours=1)

    response = await client.patch(f"/api/v1/mailings/{mailing['id']}", json={"send_window": None})
    assert response.status_code == 200, response.text
    stats = await wait_for(lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 4)
    assert stats["waiting_for_window"] == 0
    assert fake_provider.received().total_requests == 4


async def test_claim_sends_only_inside_the_window_and_moves_the_rest_to_their_opening(
    client: Api, db: AsyncSession, settings: Settings, fake_provider: RunningFakeProvider
) -> None:
    """A message due while its client's window is closed (a retry's backoff brought it there)
    is not claimed: it moves to its zone's opening, or expires if that comes too late."""
    clients = {
        # The window is 30-90 minutes from now in UTC wall time; in Lagos (UTC+1) it is open now,
        # in Tokyo (UTC+9) it opens some 15 hours from now, after the mailing's end.
        zone: await add_clients(client, 2, timezone=zone)
        for zone in ("UTC", "Africa/Lagos", "Asia/Tokyo")
    }
    now = utc_now()
    window = _window(now + dt.timedelta(minutes=30), now + dt.timedelta(minutes=90), "UTC")
    start = dt.time.fromisoformat(window["start"])
    end = dt.time.fromisoformat(window["end"])
    # No worker: the messages are written here as a retry would leave them, due now.
    mailing = await create_mailing(client, send_window=window, end_at=(now + dt.timedelta(hours=2)).isoformat())
    ids: dict[str, list[int]] = {}
    for zone, rows in clients.items():
        for row in rows:
            result = await db.execute(
                text("INSERT INTO messages (mailing_id, client_id, due_at) VALUES (:m, :c, now()) RETURNING id"),
                {"m": mailing["id"], "c": row["id"]},
            )
            ids.setdefault(zone, []).append(result.scalar_one())
    await db.commit()

    provider_settings = replace(settings, provider_url=fake_provider.base_url)
    delivery = Delivery(provider_settings, ProviderRegistry.from_settings(provider_settings))
    all_ids = [i for zone_ids in ids.values() for i in zone_ids]
    connector = create_connector(settings, max_size=2)
    await connector.open_async()
    delivery.start()
    try:
        async with connector.pool.connection() as conn:
            report = await delivery.send_batch(conn, mailing["id"], 1, all_ids)
            assert report.end_at is not None
            async with conn.transaction():
                follow_up = await delivery.follow_up(conn, all_ids, report.end_at)
    finally:
        await delivery.aclose()
        await connector.close_async()

    assert report.claimed == 2
    assert report.sent == 2
    assert report.expired == 2
    assert set(fake_provider.received().accepted) == set(ids["Africa/Lagos"])
    opening = next_opening(start, end, ZoneInfo("UTC"), utc_now())
    assert follow_up == FollowUp(sorted(ids["UTC"]), opening)
    stats = await mailing_stats(client, mailing["id"])
    by_id = {m["id"]: m for m in stats["messages"]["items"]}
    for message_id in ids["UTC"]:
        assert by_id[message_id]["status"] == "pending"
        assert dt.datetime.fromisoformat(by_id[message_id]["due_at"]) == opening
        assert by_id[message_id]["attempts"] == 0
    for message_id in ids["Asia/Tokyo"]:
        assert by_id[message_id]["status"] == "expired"
        assert by_id[message_id]["error_kind"] == "window_never_opens"
    assert stats["waiting_for_window"] == 2
    assert dt.datetime.fromisoformat(stats["next_window_opening"]) == opening


async def test_last_check_before_the_request_reschedules_instead_of_sending(settings: Settings) -> None:
    """The window may close while a claimed message waits in the queue: no request then."""

    class NoProvider:
        async def send(self, *args: object) -> None:
            raise AssertionError("the provider must not be called outside the window")

    budget = RateBudget("nowhere", None, settings.psycopg_conninfo)
    lane = Lane("nowhere", NoProvider(), CircuitBreaker(capacity=1), budget)  # type: ignore[arg-type]
    now = utc_now()
    closed = (
        dt.time.fromisoformat(_hhmm(now + dt.timedelta(hours=1), "Europe/Berlin")),
        dt.time.fromisoformat(_hhmm(now + dt.timedelta(hours=2), "Europe/Berlin")),
    )
    message = ClaimedMessage(1, 1, "79000000000", 1, "Europe/Berlin")
    log = structlog.get_logger()
    batch = SimpleNamespace(
        end_at=now + dt.timedelta(hours=3), window=closed, log=log, lane=lane, parts=1, text="hi", may_send=bool
    )
    answer = await send_one(message, batch, lane)  # type: ignore[arg-type]
    assert answer is not None
    result, cost = answer
    assert isinstance(result, WindowClosed)
    assert cost is None  # no request, so no text's parts to record
    assert result.opens_at == next_opening(*closed, ZoneInfo("Europe/Berlin"), now)
    batch.end_at = now + dt.timedelta(minutes=30)
    answer = await send_one(message, batch, lane)  # type: ignore[arg-type]
    assert answer is not None
    too_late, _ = answer
    assert isinstance(too_late, WindowClosed)
    assert too_late.opens_at is None
