"""Texts as SMSC parts: the GSM 03.38 septets against an independent implementation (smsutil), and
parts cut where the project counts them, never inside a character."""

from __future__ import annotations

import smsutil
from hypothesis import given
from hypothesis import strategies as st

from notification.mailings.sms import GSM7_BASIC, GSM7_EXTENSION, measure
from notification.provider import smpp_wire as wire

GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=500)
ANY_TEXT = st.text(max_size=400)


def test_every_gsm_character_encodes_as_smsutil_encodes_it() -> None:
    for character in sorted(GSM7_BASIC | GSM7_EXTENSION):
        assert wire.gsm7_encode(character) == smsutil.encode(character), repr(character)


@given(GSM_TEXT)
def test_gsm_text_round_trips(text: str) -> None:
    assert wire.gsm7_decode(wire.gsm7_encode(text)) == text


def _joined(parts: list[wire.Part]) -> str:
    return "".join(
        wire.decode_text(part.short_message[6:] if part.esm_class else part.short_message, part.data_coding)
        for part in parts
    )


@given(st.one_of(GSM_TEXT, ANY_TEXT))
def test_udh_parts_are_as_many_as_measured_and_join_to_the_text(text: str) -> None:
    parts = wire.split_text(text, wire.LongText.UDH, reference=7)
    assert len(parts) == measure(text).parts
    assert _joined(parts) == text
    if len(parts) > 1:
        assert [part.short_message[:6] for part in parts] == [
            bytes([5, 0, 3, 7, len(parts), i]) for i in range(1, len(parts) + 1)
        ]
        assert all(part.esm_class == wire.ESM_CLASS_UDHI for part in parts)


@given(st.one_of(GSM_TEXT, ANY_TEXT))
def test_sar_parts_carry_reference_total_and_sequence(text: str) -> None:
    parts = wire.split_text(text, wire.LongText.SAR, reference=9)
    assert len(parts) == measure(text).parts
    assert "".join(wire.decode_text(p.short_message, p.data_coding) for p in parts) == text
    if len(parts) > 1:
        assert [p.sar for p in parts] == [(9, len(parts), i) for i in range(1, len(parts) + 1)]


def test_payload_mode_sends_a_long_text_whole() -> None:
    text = "Ж" * 200
    (part,) = wire.split_text(text, wire.LongText.PAYLOAD, reference=1)
    assert part.payload == text.encode("utf-16-be")
    assert part.data_coding == wire.DATA_CODING_UCS2


def test_a_surrogate_pair_is_never_cut_between_parts() -> None:
    text = "x" * 66 + "😀" + "y" * 10
    parts = wire.split_text(text, wire.LongText.UDH, reference=1)
    first = parts[0].short_message[6:]
    assert first.decode("utf-16-be") == "x" * 66
