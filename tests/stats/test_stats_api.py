"""Statistics read from the reporting views, on rows arranged directly."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import Api
from tests.factories import ClientFactory, MailingFactory

ZEROS = {"pending": 0, "sent": 0, "failed": 0, "expired": 0, "cancelled": 0}


async def _mailing_with(db: AsyncSession, statuses: list[str], text_: str = "Hello from the factory") -> int:
    mailing = MailingFactory.build(text=text_)
    clients = [ClientFactory.build() for _ in statuses]
    db.add_all([mailing, *clients])
    await db.flush()
    for client, status in zip(clients, statuses, strict=True):
        await db.execute(
            text(
                "INSERT INTO messages (mailing_id, client_id, status, sent_at)"
                " VALUES (:m, :c, CAST(:s AS text), CASE WHEN CAST(:s AS text) = 'sent' THEN now() END)"
            ),
            {"m": mailing.id, "c": client.id, "s": status},
        )
    await db.commit()
    return mailing.id


NO_RECEIPTS = {"delivered": 0, "undelivered": 0, "unknown": 0}


async def test_one_mailing_counts_by_status_and_pages_its_messages(client: Api, db: AsyncSession) -> None:
    mailing_id = await _mailing_with(db, ["sent", "sent", "failed", "pending"])

    response = await client.get(f"/api/v1/mailings/{mailing_id}/stats", params={"status": "sent", "limit": 1})

    assert response.status_code == 200
    stats = response.json()
    assert stats["mailing_id"] == mailing_id
    assert stats["total"] == 4
    assert stats["by_status"] == {**ZEROS, "sent": 2, "failed": 1, "pending": 1}
    assert stats["mailing"]["id"] == mailing_id
    assert stats["timings"]["first_sent_at"] is not None
    page = stats["messages"]
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 0)
    assert [m["status"] for m in page["items"]] == ["sent"]


async def test_every_mailing_with_totals_and_zeros_for_one_without_messages(client: Api, db: AsyncSession) -> None:
    busy = await _mailing_with(db, ["sent", "expired", "cancelled"])
    idle = await _mailing_with(db, [])

    response = await client.get("/api/v1/mailings/stats")

    assert response.status_code == 200
    body = response.json()
    by_id = {item["mailing_id"]: item for item in body["items"]}
    assert by_id[busy] == {
        "mailing_id": busy,
        "total": 3,
        "by_status": {**ZEROS, "sent": 1, "expired": 1, "cancelled": 1},
        "parts_sent": 1,
        "by_delivery_state": NO_RECEIPTS,
    }
    assert by_id[idle] == {
        "mailing_id": idle,
        "total": 0,
        "by_status": ZEROS,
        "parts_sent": 0,
        "by_delivery_state": NO_RECEIPTS,
    }
    assert body["totals"] == {
        "total": 3,
        "by_status": {**ZEROS, "sent": 1, "expired": 1, "cancelled": 1},
        "parts_sent": 1,
        "by_delivery_state": NO_RECEIPTS,
    }


async def test_stats_of_a_missing_mailing_is_404(client: Api) -> None:
    response = await client.get("/api/v1/mailings/999/stats")
    assert response.status_code == 404
    assert response.json()["detail"] == "mailing 999 does not exist"


async def test_analysts_view_agrees_with_the_api(client: Api, db: AsyncSession) -> None:
    mailing_id = await _mailing_with(db, ["sent", "failed", "failed"])
    row = (await db.execute(text("SELECT * FROM mailing_stats WHERE mailing_id = :m"), {"m": mailing_id})).one()
    api = (await client.get(f"/api/v1/mailings/{mailing_id}/stats")).json()
    assert (row.total, row.sent, row.failed, row.pending) == (api["total"], 1, 2, 0)
    assert api["by_status"]["failed"] == row.failed


async def test_analysts_status_totals_count_every_message_of_every_mailing(client: Api, db: AsyncSession) -> None:
    await _mailing_with(db, ["sent", "sent", "failed", "pending"])
    await _mailing_with(db, ["sent", "expired", "cancelled", "cancelled", "pending"])
    await _mailing_with(db, [])

    view = dict((await db.execute(text("SELECT status, messages FROM message_status_totals"))).tuples().all())
    direct = dict((await db.execute(text("SELECT status, count(*) FROM messages GROUP BY status"))).tuples().all())
    api = (await client.get("/api/v1/mailings/stats")).json()["totals"]

    # One row per status present, no row for a status no message has.
    assert view == {"sent": 3, "failed": 1, "pending": 2, "expired": 1, "cancelled": 2}
    assert view == direct
    assert api == {"total": 9, "by_status": {**ZEROS, **view}, "parts_sent": 3, "by_delivery_state": NO_RECEIPTS}


async def test_parts_sent_count_each_sent_message_by_its_texts_parts(client: Api, db: AsyncSession) -> None:
    # 71 Cyrillic letters: UCS-2, two parts per message.
    long_cyrillic = await _mailing_with(db, ["sent", "sent", "sent", "failed"], text_="ж" * 71)
    short = await _mailing_with(db, ["sent"])

    one = (await client.get(f"/api/v1/mailings/{long_cyrillic}/stats")).json()
    every = (await client.get("/api/v1/mailings/stats")).json()

    assert (one["mailing"]["encoding"], one["mailing"]["parts"]) == ("UCS-2", 2)
    assert one["by_status"]["sent"] == 3
    assert one["parts_sent"] == 6
    assert {i["mailing_id"]: i["parts_sent"] for i in every["items"]} == {long_cyrillic: 6, short: 1}
    assert every["totals"]["parts_sent"] == 7
