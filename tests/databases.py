"""Each test's database: one per test process, emptied back to the migrated template's state
after every test instead of cloned and dropped.

A clone and a drop cost about 0.3 s of the server's CPU each time (the drop forces a
checkpoint); emptying what a test wrote costs a few hundredths. It is only safe because the reset
is checked: every other connection to the database is ended first (as a drop would end them), the
tables a test wrote to (those with any pages at all) are truncated with their statistics and the
template's rows put back, every used sequence starts again, and a fingerprint of the schema,
triggers, functions, grants and database settings must equal the template's. A test that changed any of
those (a migration test, a trigger turned off) gets the database dropped and cloned again.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.types.json import Json

# What a test could change beyond rows: a difference sends the database back to a fresh clone.
SCHEMA_FINGERPRINT = """
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
    SELECT format('rel %s.%s %s', n.nspname, c.relname, c.relkind)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\\_%temp%'
    UNION ALL
    SELECT format('col %s %s %s %s %s %s', a.attrelid::regclass, a.attname, a.atttypid::regtype,
                  a.attnotnull, a.attisdropped, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
    UNION ALL
    SELECT format('trigger %s %s %s', t.tgrelid::regclass, t.tgname, t.tgenabled) FROM pg_trigger t
    UNION ALL
    SELECT format('constraint %s %s', c.conname, pg_get_constraintdef(c.oid))
    FROM pg_constraint c WHERE c.connamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('index %s %s', i.indexrelid::regclass, pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('function %s %s', p.oid::regprocedure, md5(p.prosrc))
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('view %s %s', v.viewname, md5(v.definition)) FROM pg_views v WHERE v.schemaname = 'public'
    UNION ALL
    SELECT format('grants %s %s', c.oid::regclass, c.relacl) FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relacl IS NOT NULL
    UNION ALL
    SELECT format('grants %s %s', p.oid::regprocedure, p.proacl) FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proacl IS NOT NULL
    UNION ALL
    SELECT format('grants schema %s %s', n.nspname, n.nspacl) FROM pg_namespace n
    UNION ALL
    SELECT format('extension %s %s', e.extname, e.extversion) FROM pg_extension e
    UNION ALL
    SELECT format('setting %s', s.setconfig) FROM pg_db_role_setting s
    WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS schema(item)
"""

END_OTHER_SESSIONS = """
SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""

# Every table with a page: written to since the template (a fresh clone's are all empty but the
# seeded ones and alembic_version, whose row a test can rewrite like any other). Names come quoted
# and schema-qualified, ready to compose into a statement.
WRITTEN_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public' AND pg_relation_size(c.oid) > 0
"""

PUT_BACK = sql.SQL("INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, %s)")

USED_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), start_value FROM pg_sequences
WHERE schemaname = 'public' AND last_value IS NOT NULL
"""


class TestDatabase:
    """The database of one test process, reset between its tests (see the module's docstring)."""

    def __init__(self, server_url: str, template: str, name: str, template_conninfo: str) -> None:
        self.server_url = server_url
        self.template = template
        self.name = name
        self._conninfo = psycopg.conninfo.make_conninfo(template_conninfo, dbname=name)
        with psycopg.connect(template_conninfo, autocommit=True) as conn:
            self._fingerprint = conn.execute(SCHEMA_FINGERPRINT).fetchone()
            # The template's written tables are those the migrations seeded, and their version.
            self._seeds = {
                table: conn.execute(
                    sql.SQL("SELECT coalesce(json_agg(t), '[]') FROM {} t").format(sql.SQL(table))
                ).fetchone()[0]  # type: ignore[index]
                for (table,) in conn.execute(WRITTEN_TABLES).fetchall()
            }
        self._clone()

    def _clone(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY WAL_LOG").format(
                    sql.Identifier(self.name), sql.Identifier(self.template)
                )
            )

    def reset(self) -> None:
        """Back to the template's state, or a fresh clone when a test changed more than rows."""
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute(END_OTHER_SESSIONS)
                if conn.execute(SCHEMA_FINGERPRINT).fetchone() != self._fingerprint:
                    raise _SchemaChanged
                written = [row[0] for row in conn.execute(WRITTEN_TABLES).fetchall()]
                sequences = conn.execute(USED_SEQUENCES).fetchall()
                with conn.transaction():
                    # Replica role: no trigger counts what the reset removes or puts back.
                    conn.execute("SET LOCAL session_replication_role = replica")
                    if written:
                        tables = sql.SQL(", ").join(sql.SQL(name) for name in written)
                        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(tables))
                        # The planner must see what a fresh clone shows it: no statistics.
                        conn.execute(
                            "DELETE FROM pg_statistic WHERE starelid IN"
                            " (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
                        )
                    for table, rows in self._seeds.items():
                        conn.execute(PUT_BACK.format(table=sql.SQL(table)), (Json(rows),))
                    for sequence, start in sequences:
                        conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, start))
        except (_SchemaChanged, psycopg.Error):
            self._clone()

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


class _SchemaChanged(Exception):
    """The test changed the schema, a trigger or a setting: only a fresh clone is the template again."""
