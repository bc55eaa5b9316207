from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Integer, Sequence, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base

# The provider takes a message's id as its idempotency key: test sends draw theirs from a range
# that the messages' identity (starting at 1) never reaches.
TEST_SEND_IDS = Sequence("test_send_ids", start=2**62)


class TestSend(Base):
    """One test message sent from the API, and the provider's answer to it."""

    __tablename__ = "test_sends"
    __test__ = False  # a model, not a test class, whatever pytest makes of its name

    id: Mapped[int] = mapped_column(
        BigInteger, TEST_SEND_IDS, primary_key=True, server_default=TEST_SEND_IDS.next_value()
    )
    mailing_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("mailings.id", ondelete="SET NULL"), nullable=True, index=True
    )
    phone: Mapped[str] = mapped_column(String(11))
    text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
