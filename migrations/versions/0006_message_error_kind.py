"""Messages record the kind of their last error, decided where the provider's answer is read.

Metrics and statistics used to re-derive it from ``last_error`` with LIKE patterns; existing
rows are back-filled with exactly those patterns, once. Jobs still queued under the task names
of the old layout are renamed to the delivery package's names.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KINDS = (
    "http_5xx",
    "http_429",
    "http_408",
    "http_4xx",
    "timeout",
    "connection_error",
    "malformed",
    "provider_code",
    "deadline",
    "window_never_opens",
    "cancelled",
    "other",
)
_TASKS = (
    ("mailings:plan_mailing", "delivery:plan_mailing"),
    ("mailings:reconcile_plans", "delivery:reconcile_plans"),
    ("messages:send_messages", "delivery:send_messages"),
    ("messages:expire_overdue", "delivery:expire_overdue"),
    ("messages:retry_stalled_jobs", "delivery:retry_stalled_jobs"),
)


def upgrade() -> None:
    op.add_column("messages", sa.Column("error_kind", sa.String(length=24), nullable=True))
    kinds = ", ".join(f"'{k}'" for k in _KINDS)
    op.create_check_constraint(op.f("ck_messages_error_kind_known"), "messages", f"error_kind IN ({kinds})")
    op.execute(
        """
        UPDATE messages SET error_kind = CASE
            WHEN last_error LIKE 'HTTP 5%' THEN 'http_5xx'
            WHEN last_error LIKE 'HTTP 429%' THEN 'http_429'
            WHEN last_error LIKE 'HTTP 408%' THEN 'http_408'
            WHEN last_error LIKE 'HTTP 4%' THEN 'http_4xx'
            WHEN last_error LIKE 'timeout%' THEN 'timeout'
            WHEN last_error LIKE 'connection error%' THEN 'connection_error'
            WHEN last_error LIKE 'malformed%' THEN 'malformed'
            WHEN last_error LIKE 'provider answered code%' THEN 'provider_code'
            WHEN last_error LIKE 'end_at passed%' OR last_error LIKE 'no chance%' THEN 'deadline'
            WHEN last_error LIKE 'send window never opens%' THEN 'window_never_opens'
            ELSE 'other'
        END
        WHERE last_error IS NOT NULL
        """
    )
    for old, new in _TASKS:
        op.execute(
            sa.text("UPDATE procrastinate_jobs SET task_name = :new WHERE task_name = :old").bindparams(
                old=old, new=new
            )
        )


def downgrade() -> None:
    for old, new in _TASKS:
        op.execute(
            sa.text("UPDATE procrastinate_jobs SET task_name = :old WHERE task_name = :new").bindparams(
                old=old, new=new
            )
        )
    op.drop_constraint(op.f("ck_messages_error_kind_known"), "messages", type_="check")
    op.drop_column("messages", "error_kind")
