"""SMPP 3.4 on the wire, shared by the SMPP provider and the fake SMSC.

PDUs are encoded and decoded by ``smpplib``'s codec (every 3.4 command and optional parameter);
this module only frames them on an asyncio stream, gives them typed access, and turns a text
into the parts an SMSC takes: GSM 03.38 septets (data coding 0) or UCS-2 (8), cut where
``mailings.sms`` counts them, never between the two units of one character.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smpplib import smpp as _codec

from notification.mailings.sms import LIMITS, Encoding, encoding_of

# SMPP 3.4 section 5.1.3, the command statuses this service reads or answers.
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVMSGID = 0x0C
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVSERTYP = 0x15
ESME_RINVESMCLASS = 0x43
ESME_RSUBMITFAIL = 0x45
ESME_RINVSRCTON = 0x48
ESME_RINVSRCNPI = 0x49
ESME_RINVDSTTON = 0x50
ESME_RINVDSTNPI = 0x51
ESME_RINVSYSTYP = 0x53
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RX_R_APPN = 0x66
ESME_RINVOPTPARSTREAM = 0xC0
ESME_ROPTPARNOTALLWD = 0xC1
ESME_RINVPARLEN = 0xC2
ESME_RMISSINGOPTPARAM = 0xC3
ESME_RINVOPTPARAMVAL = 0xC4
ESME_RDELIVERYFAILURE = 0xFE
ESME_RUNKNOWNERR = 0xFF

STATUS_NAMES = {
    value: name for name, value in globals().items() if name.startswith("ESME_R") and isinstance(value, int)
}

ESM_CLASS_UDHI = 0x40
ESM_CLASS_RECEIPT = 0x04
DATA_CODING_GSM7 = 0
DATA_CODING_UCS2 = 8
INTERFACE_VERSION = 0x34

# A PDU longer than this is a broken peer, not a message: no 3.4 PDU comes near it.
MAX_PDU_LENGTH = 70_000
_HEADER_LENGTH = 16


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


class ProtocolError(Exception):
    """The peer sent bytes that are not an SMPP PDU."""


@dataclass(frozen=True, slots=True)
class Pdu:
    """A decoded PDU: its header, and its fields by their SMPP names (bytes for strings)."""

    command: str
    status: int
    sequence: int
    fields: Any
    """The codec's own object: read through the helpers below, never written."""

    def text_field(self, name: str) -> str:
        value = getattr(self.fields, name, None)
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return str(value)

    def bytes_field(self, name: str) -> bytes | None:
        value = getattr(self.fields, name, None)
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode("latin-1")
        return bytes(value)

    def int_field(self, name: str) -> int | None:
        value = getattr(self.fields, name, None)
        return int(value) if value is not None else None


def encode(command: str, sequence: int, status: int = ESME_ROK, **fields: object) -> bytes:
    """One PDU as bytes; ``fields`` by their SMPP names, ``None`` leaving an optional one out."""
    return encode_fields(command, sequence, fields, status)


def encode_fields(command: str, sequence: int, fields: Mapping[str, object], status: int = ESME_ROK) -> bytes:
    pdu = _codec.make_pdu(command, sequence=sequence, status=status, **fields)
    # The codec reads ``sequence`` only from its own client object unless it is set afterwards.
    pdu.sequence = sequence
    return bytes(pdu.generate())


def decode(data: bytes) -> Pdu:
    try:
        # ``sequence`` keeps the codec from asking a client object for a fresh one.
        pdu = _codec.parse_pdu(data, sequence=0, allow_unknown_opt_params=True)
    except Exception as exc:
        msg = f"undecodable PDU: {type(exc).__name__}"
        raise ProtocolError(msg) from exc
    if pdu is None:
        msg = "unknown command id"
        raise ProtocolError(msg)
    return Pdu(str(pdu.command), int(pdu.status), int(pdu.sequence), pdu)


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    """The next whole PDU from the stream; ``IncompleteReadError`` at its end."""
    head = await reader.readexactly(4)
    length = int.from_bytes(head, "big")
    if not _HEADER_LENGTH <= length <= MAX_PDU_LENGTH:
        msg = f"PDU length {length} out of range"
        raise ProtocolError(msg)
    return head + await reader.readexactly(length - 4)


# GSM 03.38 default alphabet in code order, and its extension table (sent after ESC, 0x1B).
_GSM7_BASIC_ORDER = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION_CODES = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E}
_GSM7_EXTENSION_CODES |= {"|": 0x40, "€": 0x65}
_GSM7_ENCODE = {c: bytes([i]) for i, c in enumerate(_GSM7_BASIC_ORDER) if c != "\x1b"}
_GSM7_ENCODE |= {c: bytes([0x1B, code]) for c, code in _GSM7_EXTENSION_CODES.items()}
_GSM7_DECODE_BASIC = dict(enumerate(_GSM7_BASIC_ORDER))
_GSM7_DECODE_EXTENSION = {code: c for c, code in _GSM7_EXTENSION_CODES.items()}


def gsm7_encode(text: str) -> bytes:
    """Unpacked septets, one a byte, as SMPP's data coding 0 carries them."""
    return b"".join(_GSM7_ENCODE[c] for c in text)


def gsm7_decode(data: bytes) -> str:
    out: list[str] = []
    escaped = False
    for byte in data:
        if escaped:
            out.append(_GSM7_DECODE_EXTENSION.get(byte, " "))
            escaped = False
        elif byte == 0x1B:
            escaped = True
        else:
            out.append(_GSM7_DECODE_BASIC.get(byte, "?"))
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == DATA_CODING_GSM7:
        return gsm7_decode(data)
    return data.decode("latin-1")


class LongText(enum.StrEnum):
    """How a text longer than one part travels."""

    UDH = "udh"
    """Concatenation header in each part's user data (esm_class UDHI), what every handset reads."""
    SAR = "sar"
    """The SAR optional parameters; the SMSC builds the header."""
    PAYLOAD = "payload"
    """The whole text in one ``message_payload``; the SMSC splits it."""


@dataclass(frozen=True, slots=True)
class Part:
    """One ``submit_sm``'s share of a text: its user data and the fields that say how to join it."""

    short_message: bytes
    data_coding: int
    esm_class: int = 0
    sar: tuple[int, int, int] | None = None
    """(reference, total, sequence) for the SAR optional parameters."""
    payload: bytes | None = None
    optional: dict[str, object] = field(default_factory=dict)

    def submit_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "short_message": self.short_message if self.payload is None else None,
            "data_coding": self.data_coding,
            "esm_class": self.esm_class,
        }
        if self.payload is not None:
            fields["message_payload"] = self.payload
        if self.sar is not None:
            reference, total, sequence = self.sar
            fields |= {"sar_msg_ref_num": reference, "sar_total_segments": total, "sar_segment_seqnum": sequence}
        return fields


_references = itertools.count(random.randrange(256))  # noqa: S311 - a concatenation reference, not a secret


def next_reference() -> int:
    """A concatenation reference: a handset joins parts by it, so it only needs to differ between
    neighbouring long texts to one phone."""
    return next(_references) % 256


def _chunks(text: str, encoding: Encoding) -> list[bytes]:
    """The text's encoded units cut into parts of ``multi`` units, never inside a character."""
    encoder = gsm7_encode if encoding is Encoding.GSM7 else (lambda s: s.encode("utf-16-be"))
    unit_bytes = 1 if encoding is Encoding.GSM7 else 2
    limit = LIMITS[encoding].multi * unit_bytes
    chunks: list[bytes] = []
    current = b""
    for character in text:
        encoded = encoder(character)
        if len(current) + len(encoded) > limit:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return chunks


def split_text(text: str, mode: LongText, reference: int) -> list[Part]:
    """The ``submit_sm`` parts of ``text``: one when it fits, else as ``mode`` says."""
    encoding = encoding_of(text)
    data_coding = DATA_CODING_GSM7 if encoding is Encoding.GSM7 else DATA_CODING_UCS2
    whole = gsm7_encode(text) if encoding is Encoding.GSM7 else text.encode("utf-16-be")
    single_bytes = LIMITS[encoding].single * (1 if encoding is Encoding.GSM7 else 2)
    if len(whole) <= single_bytes:
        return [Part(whole, data_coding)]
    if mode is LongText.PAYLOAD:
        return [Part(b"", data_coding, payload=whole)]
    chunks = _chunks(text, encoding)
    total = len(chunks)
    if total > 255:
        msg = "a text of more than 255 parts cannot be concatenated"
        raise ValueError(msg)
    if mode is LongText.SAR:
        return [Part(chunk, data_coding, sar=(reference, total, i)) for i, chunk in enumerate(chunks, start=1)]
    return [
        Part(bytes([0x05, 0x00, 0x03, reference, total, i]) + chunk, data_coding, esm_class=ESM_CLASS_UDHI)
        for i, chunk in enumerate(chunks, start=1)
    ]
