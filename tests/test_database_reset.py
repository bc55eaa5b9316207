"""The harness's own guarantee: every test starts from the migrated template's state, although
the tests of one process share a database (``tests/databases.py``). Each pair of tests below runs
in one process, in order (a file is never split): the first leaves behind what a test can, the
second must find none of it. Rows, used sequences and a session left open holding locks are undone
in place, the schema's recorded version among them; a disabled trigger or a grant sends the
database back to a fresh clone."""

from __future__ import annotations

import psycopg

from tests.databases import SCHEMA_FINGERPRINT

_seen: dict[str, object] = {}

TABLE_ROWS = """
SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', c.relname),
       false, true, '')))[1]::text::int
FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 1
"""
DATABASE_OID = "SELECT oid FROM pg_database WHERE datname = current_database()"


def _state(conn: psycopg.Connection) -> dict[str, object]:
    return {
        "rows": conn.execute(TABLE_ROWS).fetchall(),
        "schema": conn.execute(SCHEMA_FINGERPRINT).fetchone(),
        "last client id": conn.execute(
            "SELECT last_value FROM pg_sequences WHERE sequencename = 'clients_id_seq'"
        ).fetchone(),
        "seeded": conn.execute("SELECT shard, clients FROM client_counts ORDER BY shard").fetchall(),
        # Read apart from the fingerprint, so that one missing from it shows here.
        "triggers": conn.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'messages'::regclass ORDER BY 1"
        ).fetchall(),
        "anyone reads clients": conn.execute("SELECT has_table_privilege('public', 'clients', 'SELECT')").fetchone(),
        "schema version": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
    }


def _template_state(template_database_url: str) -> dict[str, object]:
    with psycopg.connect(template_database_url, autocommit=True) as template:
        return _state(template)


def _write_rows(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO clients (phone, operator_code, tag, timezone)"
        " SELECT (79000000000 + n)::text, '900', 't', 'UTC' FROM generate_series(1, 50) AS n"
    )
    conn.execute(
        "INSERT INTO mailings (text, encoding, parts, start_at, end_at, filter_operator_codes, filter_tags)"
        " VALUES ('x', 'GSM-7', 1, now(), now() + interval '1 hour', '{}', '{}')"
    )
    conn.execute("INSERT INTO messages (mailing_id, client_id, due_at) SELECT 1, id, now() FROM clients")
    conn.execute("UPDATE client_counts SET clients = clients + 1000")
    # As the readiness test does to look unmigrated; the migration tests after it read this row.
    conn.execute("UPDATE alembic_version SET version_num = '0001'")


def _ended(conn: psycopg.Connection) -> bool:
    """The server closed its end of a session the previous test left open."""
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_test_leaves_rows_used_sequences_and_a_session_holding_locks(
    database_url: str, template_database_url: str
) -> None:
    _seen["template"] = _template_state(template_database_url)
    # Left open, in a transaction holding row locks, when the test ends and its database is reset.
    conn = psycopg.connect(database_url, autocommit=True)
    _seen["lingering"] = conn
    _write_rows(conn)
    _seen["database"] = conn.execute(DATABASE_OID).fetchone()
    conn.execute("BEGIN")
    conn.execute("SELECT * FROM clients FOR UPDATE")
    assert _state(conn) != _seen["template"]


def test_the_next_test_finds_the_template_state_in_the_same_database(database_url: str) -> None:
    lingering = _seen.pop("lingering")
    assert isinstance(lingering, psycopg.Connection), "the test before this one, in this process, must run first"
    assert _ended(lingering)
    lingering.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _state(conn) == _seen["template"]
        assert conn.execute(DATABASE_OID).fetchone() == _seen["database"], "reset in place, not cloned"
        # Identities start again: the first client written is client 1.
        inserted = conn.execute(
            "INSERT INTO clients (phone, operator_code, tag, timezone) VALUES ('79000000001', '900', '', 'UTC')"
            " RETURNING id"
        ).fetchone()
        assert inserted == (1,)


def test_a_test_disables_a_trigger_and_grants_a_right(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _write_rows(conn)
        conn.execute("ALTER TABLE messages DISABLE TRIGGER USER")
        conn.execute("GRANT SELECT ON clients TO PUBLIC")
        _seen["database"] = conn.execute(DATABASE_OID).fetchone()
        assert _state(conn) != _seen["template"]


def test_the_next_test_finds_a_fresh_clone(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert _state(conn) == _seen["template"]
        assert conn.execute(DATABASE_OID).fetchone() != _seen["database"], "cloned again"
