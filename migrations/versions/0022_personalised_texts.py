"""Personalised texts: client attributes, attribute filters, and the parts of each message.

- ``clients.attributes``: a JSON object of named values, with a GIN index (``jsonb_path_ops``) that
  serves the containment (``attributes @> '{"city": "Kazan"}'``) a filter on attributes is; partial,
  over the clients that have attributes, so that an import of clients without any maintains nothing.
- ``client_attribute_names``: every attribute name any client has had, kept by a statement-level
  trigger on ``clients``, so that a text naming an unknown variable is refused with one index probe
  per name instead of a scan of the directory.
- ``filter_attributes`` on mailings, audiences and schedules: the attribute equalities of a filter.
- ``messages.encoding`` and ``messages.parts``: what the text sent to that client took, written with
  its answer. Nullable, no default: adding them rewrites nothing; a message sent before this
  revision has none and counts its mailing's parts.
- ``message_sends_per_minute.parts``: the parts of the messages sent, beside their number, added
  by the same trigger functions (replaced here), so ``parts_sent`` is exact and still a few counter
  rows. Existing rows are back-filled with their mailing's parts, as ``parts_sent`` was computed.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# A message sent before this revision has no parts of its own: its mailing's stand in, as before.
_PARTS = "coalesce({row}.parts, (SELECT g.parts FROM mailings g WHERE g.id = {row}.mailing_id))"

_UPSERT_SENDS = """
    ON CONFLICT (mailing_id, minute, shard) DO UPDATE
    SET sent = s.sent + excluded.sent,
        parts = s.parts + excluded.parts,
        first_sent_at = least(s.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(s.last_sent_at, excluded.last_sent_at);
"""

_UPSERT_COUNTS = """
    ON CONFLICT (mailing_id, status, error_kind, shard) DO UPDATE
    SET messages = c.messages + excluded.messages, attempts = c.attempts + excluded.attempts;
"""

_INSERT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION count_inserted_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT n.mailing_id, n.status, coalesce(n.error_kind, ''), counter_shard(), count(*), sum(n.attempts)
    FROM inserted_messages n
    GROUP BY n.mailing_id, n.status, coalesce(n.error_kind, '')
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, parts, first_sent_at, last_sent_at)
    SELECT n.mailing_id, date_trunc('minute', n.sent_at, 'UTC'), counter_shard(),
           count(*), sum({_PARTS.format(row="n")}), min(n.sent_at), max(n.sent_at)
    FROM inserted_messages n
    WHERE n.status = 'sent' AND n.sent_at IS NOT NULL
    GROUP BY n.mailing_id, date_trunc('minute', n.sent_at, 'UTC')
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

_UPDATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION count_updated_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT d.mailing_id, d.status, d.error_kind, counter_shard(), sum(d.messages), sum(d.attempts)
    FROM (
        SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, 1 AS messages, attempts
        FROM updated_messages
        UNION ALL
        SELECT mailing_id, status, coalesce(error_kind, ''), -1, -attempts
        FROM replaced_messages
    ) d
    GROUP BY d.mailing_id, d.status, d.error_kind
    HAVING sum(d.messages) <> 0 OR sum(d.attempts) <> 0
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, parts, first_sent_at, last_sent_at)
    SELECT d.mailing_id, date_trunc('minute', d.sent_at, 'UTC'), counter_shard(), sum(d.sent), sum(d.parts),
           min(d.sent_at) FILTER (WHERE d.sent > 0), max(d.sent_at) FILTER (WHERE d.sent > 0)
    FROM (
        SELECT n.mailing_id, n.sent_at, 1 AS sent, {_PARTS.format(row="n")} AS parts
        FROM updated_messages n WHERE n.status = 'sent' AND n.sent_at IS NOT NULL
        UNION ALL
        SELECT o.mailing_id, o.sent_at, -1, -{_PARTS.format(row="o")}
        FROM replaced_messages o WHERE o.status = 'sent' AND o.sent_at IS NOT NULL
    ) d
    GROUP BY d.mailing_id, date_trunc('minute', d.sent_at, 'UTC')
    HAVING sum(d.sent) <> 0 OR sum(d.parts) <> 0
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

_DELETE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION count_deleted_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT d.mailing_id, d.status, d.error_kind, counter_shard(), -d.messages, -d.attempts
    FROM (
        SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, count(*) AS messages,
               sum(attempts) AS attempts
        FROM deleted_messages
        GROUP BY mailing_id, status, coalesce(error_kind, '')
    ) d
    JOIN mailings g ON g.id = d.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, parts, first_sent_at, last_sent_at)
    SELECT d.mailing_id, d.minute, counter_shard(), -d.sent, -d.parts, NULL, NULL
    FROM (
        SELECT o.mailing_id, date_trunc('minute', o.sent_at, 'UTC') AS minute, count(*) AS sent,
               sum({_PARTS.format(row="o")}) AS parts
        FROM deleted_messages o
        WHERE o.status = 'sent' AND o.sent_at IS NOT NULL
        GROUP BY 1, 2
    ) d
    JOIN mailings g ON g.id = d.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# New attribute names only: a name already known costs one index probe and writes nothing.
_ATTRIBUTE_NAMES_FUNCTION = """
CREATE FUNCTION remember_attribute_names() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO client_attribute_names (name)
    SELECT DISTINCT k.name FROM changed_clients c CROSS JOIN LATERAL jsonb_object_keys(c.attributes) AS k(name)
    WHERE c.attributes <> '{}'::jsonb
    ORDER BY 1
    ON CONFLICT (name) DO NOTHING;
    RETURN NULL;
END
$$
"""

_ATTRIBUTE_TRIGGERS = (
    "CREATE TRIGGER attribute_names_on_insert AFTER INSERT ON clients REFERENCING NEW TABLE AS changed_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION remember_attribute_names()",
    "CREATE TRIGGER attribute_names_on_update AFTER UPDATE ON clients REFERENCING NEW TABLE AS changed_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION remember_attribute_names()",
)


def _jsonb_object() -> sa.Column[object]:
    return sa.Column("filter_attributes", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False)


def upgrade() -> None:
    op.add_column(
        "clients", sa.Column("attributes", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False)
    )
    op.create_index(
        "ix_clients_attributes",
        "clients",
        ["attributes"],
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
        # Clients without attributes (most, in a directory that does not use them) cost an import nothing.
        postgresql_where=sa.text("attributes <> '{}'::jsonb"),
    )
    op.create_table(
        "client_attribute_names",
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_client_attribute_names")),
    )
    op.execute(_ATTRIBUTE_NAMES_FUNCTION)
    for trigger in _ATTRIBUTE_TRIGGERS:
        op.execute(trigger)
    for table in ("mailings", "audiences", "schedules"):
        op.add_column(table, _jsonb_object())
    op.add_column("messages", sa.Column("encoding", sa.String(8), nullable=True))
    op.add_column("messages", sa.Column("parts", sa.Integer(), nullable=True))
    op.add_column("message_sends_per_minute", sa.Column("parts", sa.BigInteger(), server_default="0", nullable=False))
    # Writers of messages wait while the parts are back-filled and the functions replaced.
    op.execute("LOCK TABLE messages IN SHARE MODE")
    op.execute(
        "UPDATE message_sends_per_minute s SET parts = s.sent * g.parts FROM mailings g WHERE g.id = s.mailing_id"
    )
    for function in (_INSERT_FUNCTION, _UPDATE_FUNCTION, _DELETE_FUNCTION):
        op.execute(function)


def _revision_0010() -> ModuleType:
    path = Path(__file__).with_name("0010_message_counters.py")
    spec = importlib.util.spec_from_file_location("revision_0010", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    earlier = _revision_0010()
    for function in (earlier._INSERT_FUNCTION, earlier._UPDATE_FUNCTION, earlier._DELETE_FUNCTION):
        op.execute(function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.drop_column("message_sends_per_minute", "parts")
    op.drop_column("messages", "parts")
    op.drop_column("messages", "encoding")
    for table in ("schedules", "audiences", "mailings"):
        op.drop_column(table, "filter_attributes")
    op.execute("DROP TRIGGER IF EXISTS attribute_names_on_update ON clients")
    op.execute("DROP TRIGGER IF EXISTS attribute_names_on_insert ON clients")
    op.execute("DROP FUNCTION IF EXISTS remember_attribute_names()")
    op.drop_table("client_attribute_names")
    op.drop_index("ix_clients_attributes", table_name="clients")
    op.drop_column("clients", "attributes")
