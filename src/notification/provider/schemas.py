"""The providers and routes as the API reads and writes them. A secret is write-only: an answer
says whether one is set (``secret_set``), never what it is."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

PROVIDER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ProviderName = Annotated[str, msgspec.Meta(pattern=PROVIDER_NAME_PATTERN, examples=["mts-smpp"])]
Kind = Literal["http", "smpp"]


class ProviderWrite(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A provider to add, or what replaces one (``secret`` left out keeps the stored one)."""

    name: ProviderName
    kind: Kind
    settings: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="Its kind's settings, less the secret (a setting named token, password or secret is"
            " refused: a secret goes in `secret`). http: `url` (must be the provider's http:// or https:// URL),"
            " `timeout_s` (must be a positive number of seconds); any other key is not a setting of an http"
            " provider. smpp: `host`, `port`, `system_id`, `system_type`, `tls`, `plaintext`, `source_addr` and"
            " its `source_addr_ton`/`_npi`, `long_text`, ...; settings the SMSC client would not accept (an"
            " unknown key, a wrong type, `host` or `system_id` missing, cleartext off this host) are refused as"
            " not valid for an smpp provider.",
            examples=[{"url": "https://sms.example.com/v1"}],
        ),
    ] = msgspec.field(default_factory=dict)
    secret: (
        Annotated[
            str,
            msgspec.Meta(
                description="The token (http) or password (smpp); write-only, stored encrypted. Without a key"
                " the service refuses it: cannot be stored: NOTIFICATION_SECRET_KEY is not set.",
                max_length=1024,
            ),
        ]
        | None
    ) = None
    callback_secret: (
        Annotated[
            str,
            msgspec.Meta(
                description="The Standard Webhooks secret (whsec_ and base64 of at least 24 random bytes) the provider"
                " signs its receipt callbacks with (http); write-only, stored encrypted like `secret`; left out: kept,"
                " empty: removed (its callbacks are then refused).",
                max_length=200,
            ),
        ]
        | None
    ) = None
    rate_limit: Annotated[float, msgspec.Meta(gt=0, description="SMS parts per second")] | None = None
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="Requests in flight per worker (http)")] = 200
    window: Annotated[int, msgspec.Meta(ge=1, le=1_000, description="Submits in flight per bind (smpp)")] = 10
    binds: Annotated[int, msgspec.Meta(ge=1, le=100, description="Binds of every worker together (smpp)")] = 1
    enabled: bool = True


class ProviderRead(msgspec.Struct, kw_only=True):
    id: int
    name: str
    kind: str
    settings: dict[str, Any]
    secret_set: bool
    callback_secret_set: bool
    rate_limit: float | None
    concurrency: int
    window: int
    binds: int
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


OperatorCodes = Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[0-9]{3}$")]], msgspec.Meta(min_length=1)]
PhonePrefixes = Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^7[0-9]{0,10}$")]], msgspec.Meta(min_length=1)]


class RouteRuleSchema(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One rule: the messages it matches (by operator code or phone prefix; neither: every message)
    go to its providers, tried in order."""

    operator_codes: OperatorCodes | None = None
    phone_prefixes: PhonePrefixes | None = None
    providers: Annotated[list[ProviderName], msgspec.Meta(min_length=1, max_length=20)]
