"""Receipts as the process storing them saw them: by provider and state, and how long after its
send a message was decided. The worker serves them (SMPP receipts arrive there), the API too (HTTP
callbacks arrive there); the counts of messages by delivery state come from the counters."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from notification.receipts.store import Decided

RECEIPTS = Counter(
    "notification_receipts_total",
    "Final delivery receipts received, by provider and state (delivered, undelivered), duplicates included",
    ["provider", "state"],
)
RECEIPT_DELAY = Histogram(
    "notification_receipt_delay_seconds",
    "From a message's send (the provider's acceptance) to the receipt that decided its delivery state",
    ["provider", "state"],
    buckets=(1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600),
)


def observe(provider: str, states: Iterable[str], decided: Iterable[Decided]) -> None:
    for state in states:
        RECEIPTS.labels(provider, state).inc()
    for message in decided:
        if message.seconds_after_sent is not None:
            RECEIPT_DELAY.labels(provider, message.state).observe(max(message.seconds_after_sent, 0.0))
