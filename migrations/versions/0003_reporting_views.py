"""Reporting views: message counts by mailing and status, for the API and for analysts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW mailing_status_counts AS
        SELECT mailing_id, status, count(*) AS messages
        FROM messages
        GROUP BY mailing_id, status
        """
    )
    op.execute(
        "COMMENT ON VIEW mailing_status_counts IS 'Messages of each mailing by status (one row per pair present)'"
    )
    op.execute(
        """
        CREATE VIEW mailing_stats AS
        SELECT g.id AS mailing_id,
               g.start_at,
               g.end_at,
               count(m.id) AS total,
               count(*) FILTER (WHERE m.status = 'pending') AS pending,
               count(*) FILTER (WHERE m.status = 'sent') AS sent,
               count(*) FILTER (WHERE m.status = 'failed') AS failed,
               count(*) FILTER (WHERE m.status = 'expired') AS expired,
               count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
               min(m.sent_at) AS first_sent_at,
               max(m.sent_at) AS last_sent_at
        FROM mailings g
        LEFT JOIN messages m ON m.mailing_id = g.id
        GROUP BY g.id
        """
    )
    op.execute("COMMENT ON VIEW mailing_stats IS 'One row per mailing: message counts by status and send times'")
    op.execute(
        """
        CREATE VIEW message_status_totals AS
        SELECT status, count(*) AS messages FROM messages GROUP BY status
        """
    )
    op.execute("COMMENT ON VIEW message_status_totals IS 'All messages by status'")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS message_status_totals")
    op.execute("DROP VIEW IF EXISTS mailing_stats")
    op.execute("DROP VIEW IF EXISTS mailing_status_counts")
