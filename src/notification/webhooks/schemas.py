"""Webhook endpoints as the API reads and writes them. The signing secret is made by the service
and shown once, in the answer of the create or of a rotation; never again."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from notification.db import WITHOUT_NUL

EventName = Literal[
    "message.sent",
    "message.delivered",
    "message.undelivered",
    "message.failed",
    "message.expired",
    "mailing.started",
    "mailing.paused",
    "mailing.finished",
    "inbound.received",
]


class WebhookWrite(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An endpoint to add, or what replaces one (its secret stays: rotate it apart)."""

    url: Annotated[
        str,
        msgspec.Meta(
            max_length=2048,
            pattern=WITHOUT_NUL,
            description="Where events are POSTed. Private and loopback addresses are allowed (a CRM inside the"
            " operator's network). Refused with 400: a URL without a host or of another scheme (must be an"
            " http:// or https:// URL with a host), one with a user or password in it (must not carry"
            " credentials), one Python's URL parser refuses, such as a port out of range (is not a valid URL).",
            examples=["https://crm.example.com/hooks/sms"],
        ),
    ]
    events: Annotated[
        list[EventName],
        msgspec.Meta(min_length=1, max_length=16, description="The events it wants", examples=[["message.sent"]]),
    ]
    description: Annotated[str, msgspec.Meta(max_length=200, pattern=WITHOUT_NUL)] = ""
    enabled: bool = True


class WebhookRead(msgspec.Struct, kw_only=True):
    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    failing_since: dt.datetime | None
    failures: int
    retry_at: dt.datetime | None
    last_success_at: dt.datetime | None
    disabled_at: dt.datetime | None
    disabled_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookCreated(WebhookRead, kw_only=True):
    secret: Annotated[
        str, msgspec.Meta(description="The signing secret, `whsec_<base64>`: shown in this answer only; keep it")
    ]


class WebhookSecret(msgspec.Struct, kw_only=True):
    id: int
    secret: Annotated[str, msgspec.Meta(description="The new signing secret, shown in this answer only")]


DeliveryState = Literal["delivered", "pending", "retrying"]


class WebhookDeliveryRead(msgspec.Struct, kw_only=True):
    """One event for the endpoint, and how its delivery went (the last attempt's answer)."""

    id: int
    webhook_id: Annotated[str, msgspec.Meta(description="The `webhook-id` header it is sent with")]
    event_type: str
    subject: str
    state: DeliveryState
    attempts: int
    created_at: dt.datetime
    last_attempt_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    payload: dict[str, Any]
