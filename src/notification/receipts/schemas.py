"""What an HTTP provider posts to its receipts callback, and the answer."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_RECEIPTS = 10_000


class ReceiptIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The final state of one message, named by the msgId it was sent with."""

    id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="The msgId of the send request")]
    status: Literal["delivered", "undelivered"]
    error: Annotated[str, msgspec.Meta(max_length=64, description="The provider's error code")] | None = None


ReceiptsBody = ReceiptIn | Annotated[list[ReceiptIn], msgspec.Meta(min_length=1, max_length=MAX_RECEIPTS)]


class ReceiptsStored(msgspec.Struct, kw_only=True):
    received: int
    """Receipts in the request (one per message counted once)."""
    decided: int
    """Messages whose delivery state these receipts decided."""
    already_decided: int
    """Messages an earlier receipt had decided: repeats change nothing."""
