"""Counters of messages, kept by triggers on ``messages`` in the transactions that change them
(migration 0010), so that statistics and metrics read a few rows per mailing instead of the table.

Each counter is split over shards: a writing transaction takes the lowest shard no other
transaction holds (a transaction-level advisory lock) and only ever adds to that shard's rows, so
concurrent batches of one mailing never queue on one counter row. A shard's value may be negative
(a message counted in by one shard, out by another); only the sum over shards means anything.
The periodic fold (``stats:fold_counters``) sums the shards back into one row per key.
"""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base

SHARDS = 64
"""Counter shards a writer may take; more concurrent writing transactions than this share one."""

NO_ERROR = ""
"""``error_kind`` of the counters of messages without one (a key column cannot be NULL)."""


class MessageCount(Base):
    """Messages of a mailing in one status and with one kind of last error, and their attempts."""

    __tablename__ = "message_counts"

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    error_kind: Mapped[str] = mapped_column(String(24), primary_key=True, server_default=NO_ERROR)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    messages: Mapped[int] = mapped_column(BigInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(BigInteger, server_default="0")


class MessageSendsPerMinute(Base):
    """Messages of a mailing sent in one minute (UTC), with the first and last send time in it."""

    __tablename__ = "message_sends_per_minute"
    __table_args__ = (
        # The console's chart reads the last hour or day of every mailing at once.
        Index("ix_message_sends_per_minute_minute", "minute"),
    )

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    sent: Mapped[int] = mapped_column(BigInteger, server_default="0")
    parts: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """SMS parts of those messages, each its own text's (migration 0021): what ``parts_sent`` sums."""
    first_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


class MessageErrorsPerMinute(Base):
    """Unsent messages of a mailing whose last provider error is of one kind, by the minute (UTC)
    they are due in (migration 0015): the dashboard's errors of the last hour."""

    __tablename__ = "message_errors_per_minute"
    __table_args__ = (
        # The dashboard reads the last hour of every mailing at once.
        Index("ix_message_errors_per_minute_minute", "minute"),
    )

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), primary_key=True)
    error_kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    messages: Mapped[int] = mapped_column(BigInteger, server_default="0")


class MessageProviderCount(Base):
    """Messages of a mailing in one status whose last attempt went to one provider (migration
    0021): a mailing's messages per provider, and the dashboard's."""

    __tablename__ = "message_provider_counts"

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    messages: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ClientCount(Base):
    """Clients in the directory, for the metrics; sharded like the message counters."""

    __tablename__ = "client_counts"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    clients: Mapped[int] = mapped_column(BigInteger, server_default="0")
