"""The SMS part counter, against the GSM 03.38 rules at every part boundary and, for any text,
against an independent implementation (the smsutil package)."""

from __future__ import annotations

import pytest
import smsutil
from hypothesis import given, settings
from hypothesis import strategies as st

from notification.mailings.sms import GSM7_BASIC, GSM7_EXTENSION, Encoding, measure

CYRILLIC = "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗ"
EMOJI = "😀🎉👍🚀"
# The escape character itself is not text an operator writes; smsutil counts it as a basic one.
BASIC = "".join(sorted(GSM7_BASIC))
EXTENSION = "".join(sorted(GSM7_EXTENSION))


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("a", Encoding.GSM7, 1, 1),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        # Extension characters count two: 80 of them fill one part, 81 need two.
        ("€" * 80, Encoding.GSM7, 160, 1),
        ("€" * 81, Encoding.GSM7, 162, 2),
        ("a" * 159 + "[", Encoding.GSM7, 161, 2),
        # 152 units then an escape pair: the pair may not be cut, it opens the second part.
        ("a" * 152 + "{" + "a" * 7, Encoding.GSM7, 161, 2),
        ("a" * 152 + "{" + "a" * 152, Encoding.GSM7, 306, 3),
        ("a" * 153 + "a" * 153, Encoding.GSM7, 306, 2),
        ("Ünïcödé ist nicht GSM", Encoding.UCS2, 21, 1),
        ("д" * 70, Encoding.UCS2, 70, 1),
        ("д" * 71, Encoding.UCS2, 71, 2),
        ("д" * 134, Encoding.UCS2, 134, 2),
        ("д" * 135, Encoding.UCS2, 135, 3),
        # One Cyrillic letter turns a Latin text into UCS-2.
        ("a" * 69 + "ж", Encoding.UCS2, 70, 1),
        # An emoji is two UTF-16 units and is never split across parts.
        ("😀" * 35, Encoding.UCS2, 70, 1),
        ("😀" * 35 + "a", Encoding.UCS2, 71, 2),
        ("д" * 66 + "😀" + "д", Encoding.UCS2, 69, 1),
        ("д" * 66 + "😀" + "д" * 2, Encoding.UCS2, 70, 1),
        ("д" * 66 + "😀" + "д" * 3, Encoding.UCS2, 71, 2),
        ("д" * 67 + "😀" + "д" * 65, Encoding.UCS2, 134, 2),
        ("д" * 66 + "😀" + "д" * 66, Encoding.UCS2, 134, 3),
        ("д" * 1600, Encoding.UCS2, 1600, 24),
        ("a" * 1600, Encoding.GSM7, 1600, 11),
    ],
)
def test_encoding_units_and_parts_at_the_boundaries(text: str, encoding: Encoding, units: int, parts: int) -> None:
    measured = measure(text)
    assert (measured.encoding, measured.units, measured.parts) == (encoding, units, parts)


def _oracle(text: str) -> tuple[Encoding, int]:
    split = smsutil.split(text)
    encoding = Encoding.GSM7 if split.encoding == "gsm0338" else Encoding.UCS2
    return encoding, len(split.parts)


def test_the_oracle_agrees_with_the_table_above() -> None:
    assert _oracle("a" * 152 + "{" + "a" * 7) == (Encoding.GSM7, 2)
    assert _oracle("д" * 66 + "😀" + "д" * 66) == (Encoding.UCS2, 3)


texts = st.text(
    alphabet=st.sampled_from(BASIC.replace("\x1b", "") + EXTENSION + CYRILLIC + EMOJI) | st.characters(),
    min_size=1,
    max_size=400,
).filter(lambda t: "\x1b" not in t)
gsm_texts = st.text(alphabet=st.sampled_from(BASIC + EXTENSION), min_size=1, max_size=500).filter(
    lambda t: "\x1b" not in t
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_any_text_splits_as_smsutil_splits_it(text: str) -> None:
    measured = measure(text)
    assert (measured.encoding, measured.parts) == _oracle(text)


@settings(max_examples=300, deadline=None)
@given(gsm_texts)
def test_any_gsm7_text_splits_as_smsutil_splits_it(text: str) -> None:
    measured = measure(text)
    assert (measured.encoding, measured.parts) == _oracle(text)
