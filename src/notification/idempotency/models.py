from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base

KEY_MAX_LENGTH = 255


class IdempotencyKey(Base):
    """A key a caller sent with a create, the digest of the body it came with, and the answer it
    got; written in the transaction of the create, so a key exists exactly when its create does."""

    __tablename__ = "idempotency_keys"

    route: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    request_digest: Mapped[bytes] = mapped_column(LargeBinary)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The JSON body of the first answer, byte for byte."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now(), index=True)
