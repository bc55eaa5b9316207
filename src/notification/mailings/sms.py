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


_GSM7 = GSM7_BASIC | GSM7_EXTENSION


def encoding_of(text: str) -> Encoding:
    return Encoding.GSM7 if _GSM7.issuperset(text) else Encoding.UCS2


def _widths(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > _BMP_LAST else 1 for c in text]


def _parts(units: Iterable[int], limits: PartLimits) -> int:
    parts, used = 1, 0
    for width in units:
        if used + width > limits.multi:
            parts, used = parts + 1, 0
        used += width
    return parts


def measure(text: str) -> SmsText:
    """The encoding, length and number of parts of ``text`` (an empty text takes one part).

    Measured once per message of a personalised text, so the common cases stay in C: the set test,
    the unit count (an extension character or a surrogate pair adds one), and one part, or equal
    parts when every unit is one wide. Only a long text with two-unit characters walks them."""
    if _GSM7.issuperset(text):
        encoding = Encoding.GSM7
        wide = 0 if GSM7_EXTENSION.isdisjoint(text) else sum(map(text.count, GSM7_EXTENSION))
    else:
        encoding = Encoding.UCS2
        wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    units = len(text) + wide
    limits = LIMITS[encoding]
    if units <= limits.single:
        return SmsText(encoding, units, 1)
    if not wide:
        return SmsText(encoding, units, -(-units // limits.multi))
    return SmsText(encoding, units, _parts(_widths(text, encoding), limits))
