"""Messages per provider: counted by the triggers under the provider of each message's last attempt
(migration 0021), equal to a direct count through changes, folds and rebuilds, and shown by the
statistics API, the mailing page and the dashboard."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.stats.counters import fold_counters, rebuild_counters, verify_counters
from tests.api import Api
from tests.console_client import Console
from tests.factories import ClientFactory, MailingFactory

# (status, provider) of each message: never attempted ones have no provider.
ARRANGED = [
    ("sent", "smsc"),
    ("sent", "smsc"),
    ("sent", "aggregator"),
    ("failed", "aggregator"),
    ("pending", "smsc"),
    ("pending", None),
    ("expired", None),
]

_DIRECT = """
SELECT provider, count(*), count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed')
FROM messages WHERE mailing_id = :m AND provider IS NOT NULL GROUP BY provider
"""


async def _mailing_with(db: AsyncSession, arranged: list[tuple[str, str | None]]) -> int:
    mailing = MailingFactory.build()
    clients = [ClientFactory.build() for _ in arranged]
    db.add_all([mailing, *clients])
    await db.flush()
    await db.execute(
        text(
            "INSERT INTO messages (mailing_id, client_id, status, provider, sent_at)"
            " VALUES (:m, :c, CAST(:s AS text), :p, CASE WHEN CAST(:s AS text) = 'sent' THEN now() END)"
        ),
        [{"m": mailing.id, "c": c.id, "s": s, "p": p} for c, (s, p) in zip(clients, arranged, strict=True)],
    )
    await db.commit()
    return mailing.id


async def _direct(db: AsyncSession, mailing_id: int) -> dict[str, tuple[int, int, int]]:
    rows = await db.execute(text(_DIRECT), {"m": mailing_id})
    found = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    await db.rollback()
    return found


def _of(stats: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {p["name"]: (p["messages"], p["sent"], p["failed"]) for p in stats["providers"]}


async def test_the_split_follows_every_change_and_survives_folds_and_rebuilds(
    client: Api, db: AsyncSession, settings: Settings
) -> None:
    mailing_id = await _mailing_with(db, ARRANGED)

    async def check() -> None:
        stats = (await client.get(f"/api/v1/mailings/{mailing_id}/stats")).json()
        assert _of(stats) == await _direct(db, mailing_id)
        async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            verification = await verify_counters(conn)
        assert verification.ok, [str(d) for d in verification.differences()]

    await check()
    assert _of((await client.get(f"/api/v1/mailings/{mailing_id}/stats")).json()) == {
        "smsc": (3, 2, 0),
        "aggregator": (2, 1, 1),
    }
    # A retry of the pending one on the other provider, sent; a first attempt of a never-tried one;
    # an attempt that changes nothing counted; a deletion.
    for statement in (
        "UPDATE messages SET provider = 'aggregator', status = 'sent', sent_at = now()"
        " WHERE mailing_id = :m AND status = 'pending' AND provider = 'smsc'",
        "UPDATE messages SET provider = 'backup' WHERE mailing_id = :m AND status = 'pending'",
        "UPDATE messages SET attempts = attempts + 1 WHERE mailing_id = :m",
        "DELETE FROM messages WHERE id = (SELECT min(id) FROM messages WHERE mailing_id = :m AND provider = 'smsc')",
    ):
        await db.execute(text(statement), {"m": mailing_id})
        await db.commit()
        await check()
    assert _of((await client.get(f"/api/v1/mailings/{mailing_id}/stats")).json()) == {
        "aggregator": (3, 2, 1),
        "smsc": (1, 1, 0),
        "backup": (1, 0, 0),
    }

    async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await fold_counters(conn)
        await rebuild_counters(conn)
    await check()
    rows = await db.execute(
        text("SELECT count(*) FROM message_provider_counts WHERE mailing_id = :m"), {"m": mailing_id}
    )
    assert rows.scalar_one() == 4  # one row per (provider, status) once folded or rebuilt
    await db.rollback()


async def test_verify_names_a_provider_counter_that_disagrees(db: AsyncSession, settings: Settings) -> None:
    mailing_id = await _mailing_with(db, ARRANGED)
    await db.execute(
        text("UPDATE message_provider_counts SET messages = messages + 5 WHERE mailing_id = :m AND provider = 'smsc'"),
        {"m": mailing_id},
    )
    await db.commit()

    async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        verification = await verify_counters(conn)
        assert [str(d) for d in verification.providers] == [
            f"mailing {mailing_id} pending by smsc: counted 6, stored 1",
            f"mailing {mailing_id} sent by smsc: counted 7, stored 2",
        ]
        assert not verification.ok
        await rebuild_counters(conn)
        assert (await verify_counters(conn)).ok


async def test_the_mailing_page_and_the_dashboard_show_messages_per_provider(
    console: Console, db: AsyncSession
) -> None:
    mailing_id = await _mailing_with(db, ARRANGED)

    page = await console.get(f"/admin/mailings/{mailing_id}")
    dashboard = await console.get("/admin")

    for answer in (page, dashboard):
        assert answer.status_code == 200
        assert 'id="provider-counts"' in answer.text
        assert '<tr data-provider="smsc"><td>smsc</td><td class="num">2</td><td class="num">0</td>' in answer.text
        assert '<tr data-provider="aggregator"><td>aggregator</td><td class="num">1</td><td class="num">1</td>' in (
            answer.text
        )
