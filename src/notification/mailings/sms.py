"""How a text travels as SMS: its encoding and how many parts (segments) it takes.

GSM-7 when every character is in the GSM 03.38 basic table or its extension table (the latter
are sent as an escape plus a code, so they count two units); otherwise UCS-2, where a character
outside the Basic Multilingual Plane (an emoji) is a surrogate pair and counts two. One part
carries 160 GSM-7 or 70 UCS-2 units; a longer text is split into parts of 153 or 67 units (the
rest is the concatenation header), and a two-unit character is never cut between two parts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_BMP_LAST = 0xFFFF


class Encoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class PartLimits:
    single: int
    """Units of a text sent as one part."""
    multi: int
    """Units of each part of a longer text."""


LIMITS = {Encoding.GSM7: PartLimits(160, 153), Encoding.UCS2: PartLimits(70, 67)}


@dataclass(frozen=True, slots=True)
class SmsText:
    encoding: Encoding
    units: int
    """Length in the encoding's units (septets or UTF-16 code units)."""
    parts: int


def encoding_of(text: str) -> Encoding:
    return Encoding.GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else Encoding.UCS2


def _units(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > _BMP_LAST else 1 for c in text]


def _parts(units: Iterable[int], limits: PartLimits) -> int:
    units = list(units)
    if sum(units) <= limits.single:
        return 1
    parts, used = 1, 0
    for width in units:
        if used + width > limits.multi:
            parts, used = parts + 1, 0
        used += width
    return parts


def measure(text: str) -> SmsText:
    """The encoding, length and number of parts of ``text`` (an empty text takes one part)."""
    encoding = encoding_of(text)
    units = _units(text, encoding)
    return SmsText(encoding, sum(units), _parts(units, LIMITS[encoding]))
