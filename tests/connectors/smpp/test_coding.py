"""Text to data_coding octets and back, long-message splitting and UDH parsing."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.encoding import GSM7_BASIC, GSM7_EXTENSION, segment
from tidings.connectors.smpp.coding import (
    DATA_CODING_DEFAULT,
    DATA_CODING_LATIN1,
    DATA_CODING_UCS2,
    ConcatInfo,
    SubmitPart,
    TextCoding,
    choose_coding,
    decode_text,
    encode_text,
    message_octets,
    parse_udh,
    sar_concat,
    split_for_submit,
)
from tidings.connectors.smpp.pdu import OptionalParams, SubmitSm, decode, encode

GSM7_CHARS = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
EMOJI = "\U0001f600"

gsm7_text = st.text(st.sampled_from(GSM7_CHARS), max_size=700)
# Mostly GSM-7 with some extension characters, Cyrillic and emoji: every splitting edge case.
mixed_text = st.text(
    st.sampled_from(GSM7_CHARS) | st.sampled_from("[]€{}\u0436\u4e2d" + EMOJI), max_size=500,
)
latin1_text = st.text(st.characters(max_codepoint=0xFF), max_size=500)


def strip_udh(part: SubmitPart) -> bytes:
    return part.short_message[6:] if part.esm_class & 0x40 else part.short_message


# --- alphabets ---------------------------------------------------------------------------


def test_every_gsm7_character_encodes_and_the_alphabet_matches_messaging() -> None:
    basic = encode_text("".join(sorted(GSM7_BASIC)), "gsm7")
    assert len(basic) == 127
    assert sorted(basic) == [code for code in range(128) if code != 0x1B]
    extension = encode_text("".join(sorted(GSM7_EXTENSION)), "gsm7")
    assert len(extension) == 20
    assert extension[::2] == b"\x1b" * 10


@pytest.mark.parametrize(("text", "coding", "octets"), [
    ("@£$¥", "gsm7", "00010203"),
    ("A_a\u00e0", "gsm7", "41 11 61 7f"),
    ("\u20ac[\f", "gsm7", "1b65 1b3c 1b0a"),
    ("\u0394\u03a9", "gsm7", "10 15"),
    ("Hi" + EMOJI, "ucs2", "0048 0069 d83d de00"),
    ("caf\u00e9", "latin1", "636166e9"),
])
def test_known_encodings(text: str, coding: TextCoding, octets: str) -> None:
    assert encode_text(text, coding) == bytes.fromhex(octets.replace(" ", ""))


@pytest.mark.parametrize(("text", "coding"), [
    ("`", "gsm7"), ("\u0436", "gsm7"), ("\u20ac", "latin1"), ("\ud83d", "ucs2"),
])
def test_unrepresentable_text_is_a_value_error(text: str, coding: TextCoding) -> None:
    with pytest.raises(ValueError, match=r"cannot be encoded|not in the GSM"):
        encode_text(text, coding)


def test_unknown_coding_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        encode_text("x", "utf8")  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "coding"), [
    ("hello", "gsm7"), ("[\u20ac]", "gsm7"), ("\u0436", "ucs2"), (EMOJI, "ucs2"), ("", "gsm7"),
])
def test_choose_coding(text: str, coding: str) -> None:
    assert choose_coding(text) == coding


@given(gsm7_text)
def test_gsm7_round_trip(text: str) -> None:
    assert decode_text(DATA_CODING_DEFAULT, encode_text(text, "gsm7")) == text


@given(st.text(max_size=200))
def test_ucs2_round_trip(text: str) -> None:
    assert decode_text(DATA_CODING_UCS2, encode_text(text, "ucs2")) == text


@given(latin1_text)
def test_latin1_round_trip(text: str) -> None:
    assert decode_text(DATA_CODING_LATIN1, encode_text(text, "latin1")) == text


@pytest.mark.parametrize(("data_coding", "payload", "text"), [
    (0x00, b"\x00\x11", "@_"),
    (0x01, b"@_", "@_"),  # IA5 is ASCII, not GSM-7
    (0xF0, b"\x00", "@"),  # GSM-7, message class 0
    (0xF4, b"\xe9", "\u00e9"),  # 8-bit data, shown as latin-1
    (0x10, b"\x00", "@"),  # general group with class: GSM-7
    (0x18, b"\x04\x36", "\u0436"),  # general group with class: UCS-2
    (0xE0, b"\x04\x36", "\u0436"),  # UCS-2 message-waiting group
    (0x06, b"\xd6", "\u0436"),  # ISO-8859-5
    (0x04, b"\xff", "\u00ff"),  # binary falls back to latin-1
    (0x08, b"\x00\x41\x00", "A\ufffd"),  # odd UCS-2 length
    (0x00, b"A\x1b", "A "),  # ESC at the end
    (0x00, b"\x1b\x41", "A"),  # ESC + a code with no extension character
    (0x00, b"\x1b\x1b\x65", " \u20ac"),
    (0x00, b"\x80", "\ufffd"),  # not a septet
])
def test_decode_text_cases(data_coding: int, payload: bytes, text: str) -> None:
    assert decode_text(data_coding, payload) == text


@given(st.integers(0, 0xFF), st.binary(max_size=300))
def test_decode_text_never_raises(data_coding: int, payload: bytes) -> None:
    assert isinstance(decode_text(data_coding, payload), str)


# --- splitting ---------------------------------------------------------------------------


def test_a_short_body_is_one_plain_part() -> None:
    for mode in ("udh", "sar", "payload"):
        assert split_for_submit("x" * 160, coding="gsm7", long_mode=mode, reference=9) == [
            SubmitPart(b"x" * 160, 0, DATA_CODING_DEFAULT, OptionalParams()),
        ]


def test_udh_parts() -> None:
    parts = split_for_submit("x" * 161, coding="gsm7", long_mode="udh", reference=0x1FF)
    assert [part.short_message[:6] for part in parts] == [
        bytes.fromhex("050003ff0201"), bytes.fromhex("050003ff0202"),
    ]
    assert [len(strip_udh(part)) for part in parts] == [153, 8]
    assert all(part.esm_class == 0x40 and part.optional == OptionalParams() for part in parts)


def test_sar_parts() -> None:
    parts = split_for_submit("\u0436" * 71, coding="ucs2", long_mode="sar", reference=0x12345)
    assert [len(part.short_message) for part in parts] == [134, 8]
    assert [part.optional for part in parts] == [
        OptionalParams(sar_msg_ref_num=0x2345, sar_total_segments=2, sar_segment_seqnum=1),
        OptionalParams(sar_msg_ref_num=0x2345, sar_total_segments=2, sar_segment_seqnum=2),
    ]
    assert all(part.esm_class == 0 and part.data_coding == DATA_CODING_UCS2 for part in parts)


def test_payload_part() -> None:
    text = "\u00e9" * 141
    [part] = split_for_submit(text, coding="latin1", long_mode="payload", reference=1)
    assert part == SubmitPart(
        b"", 0, DATA_CODING_LATIN1, OptionalParams(message_payload=text.encode("latin-1")),
    )


def test_latin1_parts_are_134_octets() -> None:
    parts = split_for_submit("a" * 300, coding="latin1", long_mode="udh", reference=1)
    assert [len(strip_udh(part)) for part in parts] == [134, 134, 32]


def test_an_escape_that_does_not_fit_starts_the_next_part() -> None:
    text = "a" * 152 + "\u20ac" + "a" * 9
    parts = split_for_submit(text, coding="gsm7", long_mode="sar", reference=1)
    assert [part.short_message for part in parts] == [b"a" * 152, b"\x1b\x65" + b"a" * 9]


def test_a_surrogate_pair_that_does_not_fit_starts_the_next_part() -> None:
    text = "\u0436" * 66 + EMOJI + "\u0436" * 3
    parts = split_for_submit(text, coding="ucs2", long_mode="sar", reference=1)
    assert [len(part.short_message) for part in parts] == [132, 10]


def test_too_many_parts() -> None:
    with pytest.raises(ValueError, match="255"):
        split_for_submit("x" * (153 * 255 + 1), coding="gsm7", long_mode="udh", reference=1)
    assert len(split_for_submit("x" * 153 * 255, coding="gsm7", long_mode="udh", reference=1)) \
        == 255


def test_too_long_for_message_payload() -> None:
    with pytest.raises(ValueError, match="message_payload"):
        split_for_submit("x" * 65_536, coding="gsm7", long_mode="payload", reference=1)


def test_unknown_long_mode() -> None:
    with pytest.raises(ValueError, match="long_mode"):
        split_for_submit("x" * 200, coding="gsm7", long_mode="fax",  # type: ignore[arg-type]
                         reference=1)


def test_unrepresentable_text_fails_before_splitting() -> None:
    with pytest.raises(ValueError, match="GSM"):
        split_for_submit("\u0436" * 200, coding="gsm7", long_mode="udh", reference=1)


@given(mixed_text, st.sampled_from(["udh", "sar"]), st.integers(0, 0xFFFFFF))
def test_parts_agree_with_segment_and_rebuild_the_text(
    text: str, long_mode: Literal["udh", "sar"], reference: int,
) -> None:
    coding = choose_coding(text)
    parts = split_for_submit(text, coding=coding, long_mode=long_mode, reference=reference)
    assert len(parts) == segment(text).num_segments
    pieces = [decode_text(part.data_coding, strip_udh(part)) for part in parts]
    assert "".join(pieces) == text  # each piece decodes alone: nothing was cut in half
    for part in parts:
        submit = SubmitSm(1, esm_class=part.esm_class, data_coding=part.data_coding,
                          short_message=part.short_message, optional=part.optional)
        assert decode(encode(submit)) == submit


@given(mixed_text)
def test_payload_mode_carries_the_whole_text(text: str) -> None:
    coding = choose_coding(text)
    parts = split_for_submit(text, coding=coding, long_mode="payload", reference=0)
    assert len(parts) == 1
    octets = message_octets(parts[0].short_message, parts[0].optional)
    assert decode_text(parts[0].data_coding, octets) == text


# --- inbound reassembly ------------------------------------------------------------------


def test_parse_udh_of_our_own_parts() -> None:
    parts = split_for_submit("y" * 400, coding="gsm7", long_mode="udh", reference=0xAB)
    parsed = [parse_udh(part.short_message, part.esm_class) for part in parts]
    assert [info for info, _ in parsed] == [ConcatInfo(0xAB, 3, seq) for seq in (1, 2, 3)]
    assert b"".join(text for _, text in parsed) == b"y" * 400


def test_parse_udh_with_a_16_bit_reference_after_another_element() -> None:
    short_message = bytes.fromhex("0c 0504 0b840000 0804 1234 0302") + b"text"
    assert parse_udh(short_message, 0x40) == (ConcatInfo(0x1234, 3, 2), b"text")


@pytest.mark.parametrize(("short_message", "esm_class", "expected"), [
    (b"\x05\x00\x03\x01\x02\x01hi", 0x00, (None, b"\x05\x00\x03\x01\x02\x01hi")),  # no UDHI
    (b"\x09\x00\x03\x01\x02\x01hi", 0x40, (None, b"\x09\x00\x03\x01\x02\x01hi")),  # too long
    (b"\x05\x00\x04\x01\x02\x01hi", 0x40, (None, b"\x05\x00\x04\x01\x02\x01hi")),  # IE overrun
    (b"\x01\x00hi", 0x40, (None, b"\x01\x00hi")),  # IE header cut by the UDH end
    (b"", 0x40, (None, b"")),
    (b"\x05\x00\x03\x01\x02\x03hi", 0x40, (None, b"hi")),  # part 3 of 2: no concat info
    (b"\x04\x05\x02\x0b\x84hi", 0x40, (None, b"hi")),  # port addressing only
])
def test_parse_udh_edge_cases(
    short_message: bytes, esm_class: int, expected: tuple[ConcatInfo | None, bytes],
) -> None:
    assert parse_udh(short_message, esm_class) == expected


@given(st.binary(max_size=160), st.integers(0, 0xFF))
def test_parse_udh_never_raises(short_message: bytes, esm_class: int) -> None:
    info, text = parse_udh(short_message, esm_class)
    assert short_message.endswith(text)
    assert info is None or 1 <= info.seqnum <= info.total


def test_sar_concat() -> None:
    assert sar_concat(OptionalParams(
        sar_msg_ref_num=7, sar_total_segments=3, sar_segment_seqnum=2)) == ConcatInfo(7, 3, 2)
    assert sar_concat(OptionalParams(sar_msg_ref_num=7, sar_total_segments=3)) is None
    assert sar_concat(OptionalParams(
        sar_msg_ref_num=7, sar_total_segments=0, sar_segment_seqnum=0)) is None


def test_message_octets_prefers_a_non_empty_short_message() -> None:
    assert message_octets(b"a", OptionalParams(message_payload=b"b")) == b"a"
    assert message_octets(b"", OptionalParams(message_payload=b"b")) == b"b"
    assert message_octets(b"", OptionalParams()) == b""
