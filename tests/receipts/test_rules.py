"""The rules of receipts on the real database, without a provider: what a receipt decides, for
one part or several, in order or not, repeated, before its SMSC id is stored, after the timeout;
and that the counters equal a full recount after 100,000 receipts."""

from __future__ import annotations

import random
import time

import psycopg
from psycopg import AsyncConnection

from notification.config import Settings
from notification.receipts.store import (
    MessageReceipt,
    PartReceipt,
    apply_waiting,
    mark_unknown,
    store_message_receipts,
    store_part_receipts,
)
from notification.stats.counters import verify_counters
from tests.delivery.observe import add_mailing, rows

SMSC = "smsc"


async def _sent_messages(db: str, part_ids: list[str | None], *, sent_ago: str = "1 minute") -> tuple[int, list[int]]:
    """A mailing with one sent message per entry (its SMSC ids, comma-joined), through ``SMSC``."""
    mailing_id = await add_mailing(db, start_at="now() - interval '1 hour'", end_at="now() + interval '1 hour'")
    found = await rows(
        db,
        "INSERT INTO messages (mailing_id, status, sent_at, provider, provider_message_id)"
        f" SELECT %(m)s, 'sent', now() - interval '{sent_ago}', %(p)s, ids.id FROM unnest(%(ids)s::text[])"
        " WITH ORDINALITY AS ids(id, n) ORDER BY n RETURNING id",
        {"m": mailing_id, "p": SMSC, "ids": part_ids},
    )
    return mailing_id, sorted(i for (i,) in found)


async def _states(db: str, ids: list[int]) -> list[tuple[str, str | None, str | None]]:
    found = await rows(
        db,
        "SELECT status, delivery_state, delivery_error FROM messages WHERE id = ANY(%(ids)s) ORDER BY id",
        {"ids": ids},
    )
    return [(s, d, e) for s, d, e in found]


async def test_a_long_text_is_delivered_once_every_part_is_and_undelivered_at_its_first_failed_part(
    settings: Settings,
) -> None:
    db = settings.psycopg_conninfo
    _, (whole, failing) = await _sent_messages(db, ["a1,a2,a3", "b1,b2"])
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        await store_part_receipts(conn, SMSC, [PartReceipt("a2", "delivered"), PartReceipt("b1", "delivered")])
        assert await _states(db, [whole, failing]) == [("sent", None, None), ("sent", None, None)]
        # Out of order and repeated: the last part first, a part twice.
        await store_part_receipts(conn, SMSC, [PartReceipt("a3", "delivered"), PartReceipt("a2", "delivered")])
        assert await _states(db, [whole]) == [("sent", None, None)]
        stored = await store_part_receipts(
            conn, SMSC, [PartReceipt("a1", "delivered"), PartReceipt("b2", "undelivered", "045")]
        )
        assert sorted((d.message_id, d.state) for d in stored.decided) == [
            (whole, "delivered"),
            (failing, "undelivered"),
        ]
        # A decided message never changes: not by a repeat, not by a contrary late receipt.
        again = await store_part_receipts(
            conn, SMSC, [PartReceipt("a1", "undelivered", "001"), PartReceipt("b2", "delivered")]
        )
        assert again.decided == []
        assert again.already_decided == 2
        assert (await verify_counters(conn)).ok
    assert await _states(db, [whole, failing]) == [("sent", "delivered", None), ("sent", "undelivered", "045")]
    assert await rows(db, "SELECT count(*) FROM receipt_parts") == [(0,)]


async def test_a_receipt_before_its_smsc_id_is_stored_is_applied_by_the_write_of_the_id(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    _, (message_id,) = await _sent_messages(db, [None])
    await rows(
        db, "UPDATE messages SET status = 'pending', sent_at = NULL WHERE id = %(id)s RETURNING id", {"id": message_id}
    )
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        stored = await store_part_receipts(conn, SMSC, [PartReceipt("early", "undelivered", "011")])
        assert stored.unmatched == 1
        assert await rows(db, "SELECT provider, part_id, state FROM unmatched_receipts") == [
            (SMSC, "early", "undelivered")
        ]
        # The answer's write, as the engine's record of answers makes it.
        await conn.execute(
            "UPDATE messages SET status = 'sent', sent_at = now(), provider_message_id = 'early' WHERE id = %(id)s",
            {"id": message_id},
        )
        assert await _states(db, [message_id]) == [("sent", "undelivered", "011")]
        assert await rows(db, "SELECT count(*) FROM unmatched_receipts") == [(0,)]
        assert (await verify_counters(conn)).ok


async def test_a_receipt_whose_id_write_committed_unseen_is_applied_by_the_sweep(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    _, (message_id,) = await _sent_messages(db, ["late"])
    # As if stored while the write of "late" was uncommitted: kept unmatched, the trigger long past.
    await rows(
        db,
        "INSERT INTO unmatched_receipts (provider, part_id, state) VALUES (%(p)s, 'late', 'delivered') RETURNING 1",
        {"p": SMSC},
    )
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        applied, decided = await apply_waiting(conn)
        assert (applied, [d.state for d in decided]) == (1, ["delivered"])
        assert await apply_waiting(conn) == (0, [])
    assert await _states(db, [message_id]) == [("sent", "delivered", None)]


async def test_the_timeout_marks_unknown_and_a_late_receipt_still_decides(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    _, (old, recent) = await _sent_messages(db, ["old", None])
    await rows(db, "UPDATE messages SET sent_at = now() - interval '3 days' WHERE id = %(id)s RETURNING 1", {"id": old})
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        assert await mark_unknown(conn, timeout_s=48 * 3600) == 1
        assert await _states(db, [old, recent]) == [("sent", "unknown", None), ("sent", None, None)]
        await store_part_receipts(conn, SMSC, [PartReceipt("old", "delivered")])
        assert (await verify_counters(conn)).ok
    assert await _states(db, [old]) == [("sent", "delivered", None)]


async def test_a_receipt_for_a_message_the_ledger_expired_makes_it_sent_and_delivered(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    mailing_id, (message_id,) = await _sent_messages(db, [None])
    await rows(
        db,
        "UPDATE messages SET status = 'expired', sent_at = NULL, error_kind = 'deadline', last_error = 'timed out'"
        " WHERE id = %(id)s RETURNING 1",
        {"id": message_id},
    )
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        stored = await store_message_receipts(conn, [MessageReceipt(message_id, "delivered")])
        assert [d.state for d in stored.decided] == ["delivered"]
        unknown = await store_message_receipts(
            conn, [MessageReceipt(message_id, "delivered"), MessageReceipt(10**12, "delivered")]
        )
        assert unknown.unknown_ids == [10**12]
        assert (await verify_counters(conn)).ok
    found = await rows(
        db,
        "SELECT m.status, m.delivery_state, m.error_kind, m.sent_at <= g.end_at FROM messages m"
        " JOIN mailings g ON g.id = m.mailing_id WHERE m.id = %(id)s",
        {"id": message_id},
    )
    assert found == [("sent", "delivered", None, True)]
    assert mailing_id


RECEIPTS = 100_000


async def test_counters_equal_a_full_recount_after_100_000_receipts_with_duplicates(settings: Settings) -> None:
    db = settings.psycopg_conninfo
    mailing_ids = [
        await add_mailing(db, start_at="now() - interval '1 hour'", end_at="now() + interval '1 hour'")
        for _ in range(3)
    ]
    # 80,000 single-part messages and 5,000 of two parts, over three mailings, in one statement.
    await rows(
        db,
        "INSERT INTO messages (mailing_id, status, sent_at, provider, provider_message_id)"
        " SELECT (%(m)s::bigint[])[1 + g %% 3], 'sent', now(), %(p)s,"
        " CASE WHEN g <= 80000 THEN 's' || g ELSE 'l' || g || 'a,l' || g || 'b' END"
        " FROM generate_series(1, 85000) g RETURNING 1",
        {"m": mailing_ids, "p": SMSC},
    )
    rng = random.Random(23)
    parts = [f"s{g}" for g in range(1, 80_001)] + [f"l{g}{p}" for g in range(80_001, 85_001) for p in "ab"]
    receipts = [PartReceipt(p, "undelivered" if rng.random() < 0.2 else "delivered", "001") for p in parts]
    # Duplicates (the same receipt again, or a contrary one), and ids no message has, to 100,000.
    extra = RECEIPTS - len(receipts) - 1_000
    receipts += [PartReceipt(rng.choice(parts), rng.choice(["delivered", "undelivered"]), "002") for _ in range(extra)]
    receipts += [PartReceipt(f"nobody{i}", "delivered") for i in range(1_000)]
    rng.shuffle(receipts)
    assert len(receipts) == RECEIPTS
    started = time.monotonic()
    async with await AsyncConnection.connect(db, autocommit=True) as conn:
        for start in range(0, RECEIPTS, 10_000):
            await store_part_receipts(conn, SMSC, receipts[start : start + 10_000])
        elapsed = time.monotonic() - started
        await mark_unknown(conn, timeout_s=0.001)
        verification = await verify_counters(conn)
    assert verification.ok, [str(d) for d in verification.differences()[:5]]
    decided = await rows(db, "SELECT delivery_state IS NOT NULL, count(*) FROM messages GROUP BY 1")
    assert dict(decided) == {True: 85_000}
    counted = await rows(
        db, "SELECT delivery_state, sum(messages)::bigint FROM message_delivery_counts GROUP BY 1 ORDER BY 1"
    )
    stored = await rows(db, "SELECT delivery_state, count(*) FROM messages GROUP BY 1 ORDER BY 1")
    assert counted == stored
    assert await rows(db, "SELECT count(*) FROM unmatched_receipts") == [(1_000,)]
    assert elapsed < 30, f"{RECEIPTS} receipts took {elapsed:.1f} s"
    with psycopg.connect(db) as check:
        assert check.execute("SELECT count(*) FROM receipt_parts").fetchone() == (0,)
