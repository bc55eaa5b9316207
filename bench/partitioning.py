"""What partitioning ``messages`` by mailing would change, measured on a copy of the table.

    uv run python bench/partitioning.py                         # 5M messages, 500 mailings, 25 per partition
    uv run python bench/partitioning.py --messages 10000000 --per-partition 50

Fills ``messages`` with bench/stats.py's loader, then builds ``messages_by_range``: the same rows in a table
partitioned by RANGE (mailing_id), ``--per-partition`` mailings in each, with the primary key
``(mailing_id, id)`` (a partitioned table's unique keys must hold its partition key), the unique
``(mailing_id, client_id)`` and the other indexes of ``messages``, and the counting triggers on the
parent. It then times, each statement run ``--repeat`` times in a transaction rolled back:

- the engine's claim of 500 messages and its record of 100 answers, as they are today (both find
  rows by id alone somewhere) and with ``mailing_id`` added wherever they do, so that the planner
  can prune partitions (a statement past 20 s is given up);
- deleting a 1M-message mailing's rows against dropping a partition of about as many rows;
- planning 100,000 messages into either table, counting triggers included.
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import throwaway_database

from notification.delivery.queries import queries
from stats import PLAIN_INDEXES, load, mailing_sizes


def on_table(statement: str, table: str) -> str:
    """An engine statement with ``messages`` replaced by another table of the same shape."""
    return re.sub(r"\bmessages\b", table, statement)


def with_mailing(statement: str) -> str:
    """An engine statement with the batch's mailing added wherever it finds messages by id."""
    for by_id, by_mailing_and_id in (
        ("WHERE id = ANY(%(ids)s)", "WHERE mailing_id = %(mailing_id)s AND id = ANY(%(ids)s)"),
        ("WHERE m.id = r.id", "WHERE m.mailing_id = %(mailing_id)s AND m.id = r.id"),
        ("WHERE m.id = claimable.id", "WHERE m.mailing_id = %(mailing_id)s AND m.id = claimable.id"),
    ):
        statement = statement.replace(by_id, by_mailing_and_id)
    return statement


TIMEOUT_S = 20


def timed(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], repeat: int) -> str:
    """Median ms of ``sql``, each run in a transaction rolled back; or how long it was given up after."""
    runs = []
    for _ in range(repeat):
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL statement_timeout = '{TIMEOUT_S}s'")
            started = time.perf_counter()
            try:
                conn.execute(sql, params)
            except psycopg.errors.QueryCanceled:
                return f"> {TIMEOUT_S * 1000:,}"
            runs.append((time.perf_counter() - started) * 1000)
    return f"{statistics.median(runs):,.1f}"


def build_partitioned(conn: psycopg.Connection[Any], ids: list[int], per_partition: int) -> int:
    conn.execute(
        "CREATE TABLE messages_by_range (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (mailing_id)"
    )
    # The msgId keeps coming from the one sequence of messages.
    conn.execute(
        "ALTER TABLE messages_by_range ALTER COLUMN id SET DEFAULT nextval(pg_get_serial_sequence('messages', 'id'))"
    )
    bounds = [*ids[::per_partition], ids[-1] + 1]
    for n, (low, high) in enumerate(itertools.pairwise(bounds)):
        conn.execute(
            f"CREATE TABLE messages_by_range_{n} PARTITION OF messages_by_range"
            f" FOR VALUES FROM ({low}) TO ({high}) WITH (fillfactor = 70)"
        )
    conn.execute("INSERT INTO messages_by_range SELECT * FROM messages")
    conn.execute("ALTER TABLE messages_by_range ADD PRIMARY KEY (mailing_id, id)")
    conn.execute("ALTER TABLE messages_by_range ADD UNIQUE (mailing_id, client_id)")
    for _, definition in conn.execute(PLAIN_INDEXES).fetchall():
        conn.execute(
            re.sub(r"INDEX (\w+) ON public\.messages ", r"INDEX \1_p ON public.messages_by_range ", definition)
        )
    for event, referencing, function in (
        ("INSERT", "NEW TABLE AS inserted_messages", "count_inserted_messages"),
        ("UPDATE", "OLD TABLE AS replaced_messages NEW TABLE AS updated_messages", "count_updated_messages"),
        ("DELETE", "OLD TABLE AS deleted_messages", "count_deleted_messages"),
    ):
        conn.execute(
            f"CREATE TRIGGER by_range_counted_on_{event.lower()} AFTER {event} ON messages_by_range"
            f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    conn.execute("VACUUM ANALYZE messages_by_range")
    return len(bounds) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--mailings", type=int, default=500)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--per-partition", type=int, default=25, help="mailings per partition")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    sizes = mailing_sizes(args.messages, args.mailings, args.clients, 1.0)

    with throwaway_database(args.database_url) as settings, psycopg.connect(settings.psycopg_conninfo) as conn:
        conn.autocommit = True
        ids = load(conn, args, sizes)
        started = time.perf_counter()
        partitions = build_partitioned(conn, ids, args.per_partition)
        print(f"{args.messages:,} messages, {args.mailings} mailings; {partitions} partitions of {args.per_partition}")
        print(f"partitioned copy built in {time.perf_counter() - started:.0f} s")
        conn.autocommit = False

        # A mid-sized mailing: a batch of its pending messages and one of its sent ones.
        mailing_id = ids[len(ids) // 3]
        pending = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM messages WHERE mailing_id = %s AND status = 'pending' ORDER BY id LIMIT 500",
                [mailing_id],
            )
        ]
        conn.execute("UPDATE mailings SET end_at = now() + interval '1 day' WHERE id = %s", [mailing_id])
        conn.execute("UPDATE messages SET due_at = now() - interval '1 minute' WHERE id = ANY(%s)", [pending])
        conn.execute(
            "UPDATE messages_by_range SET due_at = now() - interval '1 minute' WHERE mailing_id = %s AND id = ANY(%s)",
            [mailing_id, pending],
        )
        conn.commit()
        claim = {"ids": pending, "mailing_id": mailing_id, "lease_s": 60, "with_attributes": False}
        answers = pending[:100]
        record = {
            "ids": answers,
            "mailing_id": mailing_id,
            "statuses": ["sent"] * len(answers),
            "errors": [None] * len(answers),
            "error_kinds": [None] * len(answers),
            "due_ats": [None] * len(answers),
            "answered_ats": [None] * len(answers),
            "providers": [None] * len(answers),
            "provider_message_ids": [None] * len(answers),
            "encodings": [None] * len(answers),
            "parts": [None] * len(answers),
            "unattempted": [False] * len(answers),
        }
        rows = [
            ("claim 500 (as today)", queries["claim"], claim),
            ("claim 500 (mailing in the update too)", with_mailing(queries["claim"]), claim),
            ("record 100 answers (as today, by ids)", queries["record_answers"], record),
            ("record 100 answers (mailing added)", with_mailing(queries["record_answers"]), record),
        ]
        print(f"\nmedian of {args.repeat} runs, ms           {'messages':>10} {'by range':>10}")
        for label, sql, params in rows:
            plain = timed(conn, sql, params, args.repeat)
            split = timed(conn, on_table(sql, "messages_by_range"), params, args.repeat)
            print(f"{label:<40} {plain:>10} {split:>10}")

        biggest = ids[0]
        rows_in_partition_0 = conn.execute("SELECT count(*) FROM messages_by_range_0").fetchone()[0]  # type: ignore[index]
        delete = timed(conn, "DELETE FROM messages WHERE mailing_id = %(m)s", {"m": biggest}, 3)
        drop = timed(conn, "DROP TABLE messages_by_range_0", {}, 3)
        print(f"{f'delete a {sizes[0]:,}-message mailing':<40} {delete:>10}")
        print(f"{f'drop a partition of {rows_in_partition_0:,} rows':<40} {'':>10} {drop:>10}")

        plan = (
            "INSERT INTO {table} (mailing_id, client_id, due_at)"
            " SELECT %(m)s, c.id, now() FROM clients c WHERE c.id <= 100000"
            " ON CONFLICT (mailing_id, client_id) DO NOTHING"
        )
        new_mailing = conn.execute(
            "INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
            " VALUES ('new', 'GSM-7', 1, now(), now() + interval '1 day') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            f"CREATE TABLE messages_by_range_new PARTITION OF messages_by_range"
            f" FOR VALUES FROM ({new_mailing}) TO ({new_mailing + 1})"
        )
        conn.commit()
        plain = timed(conn, plan.format(table="messages"), {"m": new_mailing}, 3)
        split = timed(conn, plan.format(table="messages_by_range"), {"m": new_mailing}, 3)
        print(f"{'plan 100,000 messages (triggers on)':<40} {plain:>10} {split:>10}")
        with conn.transaction(force_rollback=True):
            conn.execute(plan.format(table="messages_by_range"), {"m": new_mailing})
            counted = conn.execute(
                "SELECT sum(messages) FROM message_counts WHERE mailing_id = %s", [new_mailing]
            ).fetchone()[0]  # type: ignore[index]
        print(f"counters of the plan into the partitioned parent: {counted:,} messages")


if __name__ == "__main__":
    main()
