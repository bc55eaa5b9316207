"""Error kinds of SMPP providers: throttling, another command status, no bind.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

_BEFORE = (
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
_SMPP = ("smpp_throttled", "smpp_status", "smpp_bind")


def _replace_check(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_messages_error_kind_known"), "messages", type_="check")
    listed = ", ".join(f"'{k}'" for k in kinds)
    op.create_check_constraint(op.f("ck_messages_error_kind_known"), "messages", f"error_kind IN ({listed})")


def upgrade() -> None:
    _replace_check(_BEFORE + _SMPP)


def downgrade() -> None:
    op.execute(
        "UPDATE messages SET error_kind = 'other' WHERE error_kind IN ('smpp_throttled', 'smpp_status', 'smpp_bind')"
    )
    _replace_check(_BEFORE)
