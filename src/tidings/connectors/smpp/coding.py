"""Text to SMPP ``data_coding`` octets and back, long-message splitting and reassembly help.

Outbound: ``choose_coding`` picks GSM-7 or UCS-2 like ``tidings.connectors.encoding``,
``split_for_submit`` turns a body into submit_sm parts (UDH, SAR TLVs or message_payload).
Inbound: ``decode_text`` never raises (carrier text must not crash us), ``parse_udh`` and
``sar_concat`` say which part of a concatenated message a deliver_sm carries.

GSM-7 travels the usual SMPP way: one septet per octet, unpacked; the SMSC packs it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

from tidings.connectors.encoding import GSM7_BASIC, GSM7_EXTENSION
from tidings.connectors.smpp.pdu import OptionalParams

TextCoding = Literal["gsm7", "latin1", "ucs2"]

DATA_CODING_DEFAULT = 0  # SMSC default alphabet: GSM-7 for every SMSC we know
DATA_CODING_IA5 = 1
DATA_CODING_LATIN1 = 3
DATA_CODING_UCS2 = 8
ESM_CLASS_UDHI = 0x40

_DATA_CODING: dict[TextCoding, int] = {
    "gsm7": DATA_CODING_DEFAULT, "latin1": DATA_CODING_LATIN1, "ucs2": DATA_CODING_UCS2,
}
# (octets in a single message, octets of text in each part of a long one)
_SIZES: dict[TextCoding, tuple[int, int]] = {
    "gsm7": (160, 153), "latin1": (140, 134), "ucs2": (140, 134),
}
_MAX_PARTS = 255
_MAX_PAYLOAD = 0xFFFF

_ESC = "\x1b"
# GSM 03.38 default alphabet in code order; ESC sits at 0x1B as the extension prefix.
# Greek capitals are escapes so that look-alike letters cannot slip in.
_GSM7_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION_CODES: dict[str, int] = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION
# For str.translate: each character to the latin-1 character whose ordinal is its code.
_GSM7_ENCODE: dict[int, str] = {
    **{ord(char): chr(code) for code, char in enumerate(_GSM7_TABLE) if char != _ESC},
    **{ord(char): _ESC + chr(code) for char, code in _GSM7_EXTENSION_CODES.items()},
}
# For codecs.charmap_decode: octets 0x80-0xFF are not septets; U+FFFE makes them errors,
# which the "replace" handler turns into U+FFFD.
_GSM7_DECODE = _GSM7_TABLE.replace(_ESC, " ") + "\ufffe" * 128
_GSM7_EXTENSION_BY_CODE: dict[int, str] = {
    code: char for char, code in _GSM7_EXTENSION_CODES.items()
}


def choose_coding(text: str) -> Literal["gsm7", "ucs2"]:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    return "gsm7" if _GSM7_ALL.issuperset(text) else "ucs2"


def encode_text(text: str, coding: TextCoding) -> bytes:
    """``text`` as octets for ``short_message``; ``ValueError`` if it cannot be represented.

    gsm7: one octet per septet, extension characters as ESC + code. ucs2: UTF-16-BE, so
    characters outside the BMP become surrogate pairs. latin1: ISO-8859-1.
    """
    if coding == "gsm7":
        if not _GSM7_ALL.issuperset(text):
            bad = next(char for char in text if char not in _GSM7_ALL)
            raise ValueError(f"{bad!r} is not in the GSM 03.38 alphabet")
        return text.translate(_GSM7_ENCODE).encode("latin-1")
    if coding == "ucs2":
        return _encode_strict(text, "utf-16-be")
    if coding == "latin1":
        return _encode_strict(text, "latin-1")
    raise ValueError(f"unknown text coding {coding!r}")


def _encode_strict(text: str, codec: str) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as error:
        raise ValueError(f"{text[error.start]!r} cannot be encoded as {codec}") from None


def decode_text(data_coding: int, payload: bytes) -> str:
    """The text of a ``short_message``/``message_payload``; never raises.

    0 and the GSM DCS groups that mean the default alphabet (0x10-0x13, 0xC0-0xDF,
    0xF0-0xF3, any message class) decode as unpacked GSM-7; 1 (IA5) as ASCII; 3 as
    latin-1; 6 and 7 as ISO-8859-5/-8; 8 and the UCS-2 groups as UTF-16-BE. Anything else,
    8-bit binary included, falls back to latin-1 so that every octet shows up as something.
    Undecodable octets become U+FFFD.
    """
    if data_coding in _PYTHON_CODECS:
        return payload.decode(_PYTHON_CODECS[data_coding], errors="replace")
    alphabet = _alphabet(data_coding)
    if alphabet == "gsm7":
        return _decode_gsm7(payload)
    if alphabet == "ucs2":
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")


# SMPP 3.4 section 5.2.19 values with a Python codec; 0 is GSM-7, handled apart.
_PYTHON_CODECS: dict[int, str] = {
    DATA_CODING_IA5: "latin-1",  # 7-bit ASCII; latin-1 shows stray 8-bit octets too
    DATA_CODING_LATIN1: "latin-1",
    6: "iso8859-5",
    7: "iso8859-8",
    DATA_CODING_UCS2: "utf-16-be",
}


def _alphabet(data_coding: int) -> Literal["gsm7", "ucs2", "8bit"]:
    """The alphabet of a GSM 03.38 DCS octet, for the groups that are simple to read."""
    if data_coding == DATA_CODING_DEFAULT or 0xC0 <= data_coding <= 0xDF:
        return "gsm7"
    if 0xE0 <= data_coding <= 0xEF:
        return "ucs2"
    if data_coding & 0xF0 == 0xF0:
        return "8bit" if data_coding & 0x04 else "gsm7"
    if data_coding & 0xF0 == 0x10:  # general group, uncompressed, with a message class
        return ("gsm7", "8bit", "ucs2", "8bit")[(data_coding >> 2) & 0x03]
    return "8bit"


def _decode_gsm7(payload: bytes) -> str:
    head, *escaped = payload.split(b"\x1b")
    pieces = [_decode_septets(head)]
    for chunk in escaped:
        if not chunk:  # ESC at the end or before another ESC: show a space (TS 23.038)
            pieces.append(" ")
            continue
        # An escape to a code with no extension character shows the basic character.
        code = chunk[0]
        pieces.append(_GSM7_EXTENSION_BY_CODE.get(code) or _decode_septets(chunk[:1]))
        pieces.append(_decode_septets(chunk[1:]))
    return "".join(pieces)


def _decode_septets(octets: bytes) -> str:
    return codecs.charmap_decode(octets, "replace", _GSM7_DECODE)[0]


# --- long messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitPart:
    """One submit_sm worth of a body: the fields that differ from part to part."""

    short_message: bytes
    esm_class: int
    data_coding: int
    optional: OptionalParams


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Where an inbound part belongs: message ``reference``, part ``seqnum`` of ``total``."""

    reference: int
    total: int
    seqnum: int


def split_for_submit(
    text: str,
    *,
    coding: TextCoding,
    long_mode: Literal["udh", "sar", "payload"],
    reference: int,
) -> list[SubmitPart]:
    """The submit_sm parts that carry ``text``.

    A body that fits one SMS (160 septets, 140 latin-1 octets, 70 UTF-16 units) is one
    plain part. Longer bodies: "udh" cuts 153 septets / 134 octets / 67 units per part and
    prefixes each with a concatenation UDH (8-bit ``reference``), setting UDHI in
    esm_class; "sar" cuts the same way and sends the SAR TLVs (16-bit ``reference``);
    "payload" sends one part with the whole text in message_payload. A GSM-7 escape or a
    UTF-16 surrogate pair is never cut in half, so part counts agree with
    ``tidings.connectors.encoding.segment``. ``ValueError`` for text the coding cannot
    carry, more than 255 parts, or a payload over 65,535 octets.
    """
    data = encode_text(text, coding)
    data_coding = _DATA_CODING[coding]
    single, multi = _SIZES[coding]
    if len(data) <= single:
        return [SubmitPart(data, 0, data_coding, OptionalParams())]
    if long_mode == "payload":
        if len(data) > _MAX_PAYLOAD:
            raise ValueError(f"{len(data)} octets do not fit message_payload")
        return [SubmitPart(b"", 0, data_coding, OptionalParams(message_payload=data))]
    chunks = _cut(data, multi, coding)
    if len(chunks) > _MAX_PARTS:
        raise ValueError(f"{len(chunks)} parts; concatenation allows at most {_MAX_PARTS}")
    if long_mode == "udh":
        return _udh_parts(chunks, data_coding, reference & 0xFF)
    if long_mode == "sar":
        return _sar_parts(chunks, data_coding, reference & 0xFFFF)
    raise ValueError(f"unknown long_mode {long_mode!r}")


def _cut(data: bytes, size: int, coding: TextCoding) -> list[bytes]:
    """``data`` in pieces of at most ``size`` octets, never inside a character."""
    chunks: list[bytes] = []
    start = 0
    while len(data) - start > size:
        stop = start + size
        if coding == "gsm7" and data[stop - 1] == 0x1B:
            stop -= 1  # ESC is always a prefix: no extension code is 0x1B
        elif coding == "ucs2" and 0xD8 <= data[stop - 2] <= 0xDB:
            stop -= 2  # a high surrogate: its low half starts the next part
        chunks.append(data[start:stop])
        start = stop
    chunks.append(data[start:])
    return chunks


def _udh_parts(chunks: list[bytes], data_coding: int, reference: int) -> list[SubmitPart]:
    total = len(chunks)
    return [
        SubmitPart(
            bytes((0x05, 0x00, 0x03, reference, total, seqnum)) + chunk,
            ESM_CLASS_UDHI, data_coding, OptionalParams(),
        )
        for seqnum, chunk in enumerate(chunks, start=1)
    ]


def _sar_parts(chunks: list[bytes], data_coding: int, reference: int) -> list[SubmitPart]:
    total = len(chunks)
    return [
        SubmitPart(chunk, 0, data_coding, OptionalParams(
            sar_msg_ref_num=reference, sar_total_segments=total, sar_segment_seqnum=seqnum,
        ))
        for seqnum, chunk in enumerate(chunks, start=1)
    ]


# --- inbound reassembly ------------------------------------------------------------------


def parse_udh(short_message: bytes, esm_class: int) -> tuple[ConcatInfo | None, bytes]:
    """Split a deliver_sm ``short_message`` into its concatenation info and its text octets.

    Without UDHI in ``esm_class`` the octets are returned as they are. With it, the UDH is
    parsed (IEI 0x00: 8-bit reference, 0x08: 16-bit reference) and removed. A UDH whose
    lengths do not add up is treated as no UDH at all: ``(None, short_message)``. A
    well-formed UDH without a usable concatenation element gives ``(None, text)``.
    Never raises.
    """
    if not esm_class & ESM_CLASS_UDHI or not short_message:
        return None, short_message
    text_start = 1 + short_message[0]
    if text_start > len(short_message):
        return None, short_message
    concat: ConcatInfo | None = None
    pos = 1
    while pos < text_start:
        if pos + 2 > text_start:
            return None, short_message
        element, length = short_message[pos], short_message[pos + 1]
        value_start, pos = pos + 2, pos + 2 + length
        if pos > text_start:
            return None, short_message
        concat = concat or _concat_element(element, short_message[value_start:pos])
    return concat, short_message[text_start:]


def _concat_element(element: int, value: bytes) -> ConcatInfo | None:
    if element == 0x00 and len(value) == 3:
        return _concat(value[0], value[1], value[2])
    if element == 0x08 and len(value) == 4:
        return _concat(int.from_bytes(value[:2], "big"), value[2], value[3])
    return None


def _concat(reference: int, total: int, seqnum: int) -> ConcatInfo | None:
    # Part numbers outside 1..total cannot be reassembled; treat them as a lone message.
    return ConcatInfo(reference, total, seqnum) if 1 <= seqnum <= total else None


def sar_concat(optional: OptionalParams) -> ConcatInfo | None:
    """The concatenation info carried by the SAR TLVs, when all three are present and sane."""
    reference = optional.sar_msg_ref_num
    total, seqnum = optional.sar_total_segments, optional.sar_segment_seqnum
    if reference is None or total is None or seqnum is None:
        return None
    return _concat(reference, total, seqnum)


def message_octets(short_message: bytes, optional: OptionalParams) -> bytes:
    """The message body: ``short_message``, or ``message_payload`` when that carries it.

    SMPP 3.4 forbids using both; when a peer does, the non-empty short_message wins.
    """
    if short_message or optional.message_payload is None:
        return short_message
    return optional.message_payload


def read_message(short_message: bytes, esm_class: int, data_coding: int,
                 optional: OptionalParams) -> tuple[ConcatInfo | None, str]:
    """An incoming submit_sm or deliver_sm's text and, for a part of a long message,
    where it belongs (UDH, else SAR TLVs). Never raises."""
    concat, octets = parse_udh(message_octets(short_message, optional), esm_class)
    return concat or sar_concat(optional), decode_text(data_coding, octets)
