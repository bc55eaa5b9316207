"""Values the browser keeps for us, signed so that it cannot change them: ``<base64 json>.<hmac>``.

A value is signed for one purpose; a value signed for another (or with another secret) is no value."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec


def _mac(secret: str, purpose: str, payload: bytes) -> str:
    digest = hmac.new(f"{purpose}:{secret}".encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str, purpose: str, value: Any) -> str:
    payload = base64.urlsafe_b64encode(msgspec.json.encode(value)).rstrip(b"=")
    return f"{payload.decode()}.{_mac(secret, purpose, payload)}"


def unsign(secret: str, purpose: str, signed: str | None) -> Any | None:
    """The value, or None when there is none or its signature does not hold."""
    if not signed:
        return None
    payload, _, mac = signed.partition(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, purpose, payload.encode()).encode()):
        return None
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, msgspec.DecodeError):
        return None


__all__ = ("sign", "unsign")
