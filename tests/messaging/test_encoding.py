"""SMS encoding choice and segmentation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Segmentation,
    segment,
)

CYRILLIC = "\u0436"  # a BMP character outside GSM-7: one UTF-16 unit
EMOJI = "\U0001f600"  # an astral character: a surrogate pair, two UTF-16 units


def _gsm_cost(text: str) -> int:
    return sum(2 if char in GSM7_EXTENSION else 1 for char in text)


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "little") for i in range(0, len(data), 2)]


def _cost(encoding: str, text: str) -> int:
    return _gsm_cost(text) if encoding == "GSM-7" else len(_utf16_units(text))


# --- alphabets ---------------------------------------------------------------------------


def test_alphabet_sizes_match_the_spec() -> None:
    # 128 code points minus ESC; 9 printable extension characters plus form feed.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert GSM7_BASIC.isdisjoint(GSM7_EXTENSION)
    assert "\x1b" not in GSM7_BASIC


def test_extension_table_contents() -> None:
    assert set("^{}\\[~]|€\f") == GSM7_EXTENSION


@pytest.mark.parametrize("char", ["@", "£", "\n", "\r", "Δ", "Ω", "ß", "É", "¤", "§", "¿", "à"])
def test_basic_alphabet_samples(char: str) -> None:
    assert char in GSM7_BASIC


@pytest.mark.parametrize("char", ["`", "\t", "á", "ç", "\u2126", "\xa0", "\x1b"])
def test_lookalikes_and_near_misses_are_not_gsm(char: str) -> None:
    # U+2126 OHM SIGN looks like Omega; ç is not in the table (Ç is); backtick is absent.
    assert char not in GSM7_BASIC
    assert char not in GSM7_EXTENSION


# --- GSM-7 boundaries --------------------------------------------------------------------


def test_empty_body_is_one_empty_gsm_segment() -> None:
    assert segment("") == Segmentation("GSM-7", 1, ("",), 0)


def test_160_gsm_chars_fit_one_segment() -> None:
    result = segment("a" * 160)
    assert result == Segmentation("GSM-7", 1, ("a" * 160,), 160)


def test_161_gsm_chars_need_two_segments() -> None:
    result = segment("a" * 161)
    assert result.encoding == "GSM-7"
    assert result.units == 161
    assert result.segments == ("a" * 153, "a" * 8)
    assert result.num_segments == 2


def test_two_full_multipart_gsm_segments() -> None:
    result = segment("b" * 306)
    assert result.segments == ("b" * 153, "b" * 153)
    assert result.num_segments == 2


def test_one_past_two_full_gsm_segments_needs_three() -> None:
    result = segment("b" * 307)
    assert result.segments == ("b" * 153, "b" * 153, "b")
    assert result.num_segments == 3


def test_80_euro_signs_are_160_septets_in_one_segment() -> None:
    result = segment("€" * 80)
    assert result == Segmentation("GSM-7", 1, ("€" * 80,), 160)


def test_81_euro_signs_need_two_segments() -> None:
    result = segment("€" * 81)
    assert result.units == 162
    # 76 x 2 = 152 septets; a 77th would make 154 > 153.
    assert result.segments == ("€" * 76, "€" * 5)


def test_escape_char_at_position_153_moves_to_next_segment() -> None:
    body = "a" * 152 + "€" + "a" * 10
    result = segment(body)
    assert result.units == 164
    assert result.segments == ("a" * 152, "€" + "a" * 10)


def test_escape_char_ending_exactly_at_153_stays() -> None:
    body = "a" * 151 + "{" + "a" * 10
    result = segment(body)
    assert result.segments == ("a" * 151 + "{", "a" * 10)


def test_extension_chars_in_single_segment_count_double() -> None:
    result = segment("a" * 158 + "~")
    assert result == Segmentation("GSM-7", 1, ("a" * 158 + "~",), 160)
    assert segment("a" * 159 + "~").num_segments == 2


# --- UCS-2 boundaries --------------------------------------------------------------------


def test_70_ucs2_chars_fit_one_segment() -> None:
    result = segment(CYRILLIC * 70)
    assert result == Segmentation("UCS-2", 1, (CYRILLIC * 70,), 70)


def test_71_ucs2_chars_need_two_segments() -> None:
    result = segment(CYRILLIC * 71)
    assert result.encoding == "UCS-2"
    assert result.segments == (CYRILLIC * 67, CYRILLIC * 4)


def test_two_full_multipart_ucs2_segments() -> None:
    result = segment(CYRILLIC * 134)
    assert result.segments == (CYRILLIC * 67, CYRILLIC * 67)


def test_one_non_gsm_char_switches_whole_body_to_ucs2() -> None:
    result = segment("a" * 69 + CYRILLIC)
    assert result.encoding == "UCS-2"
    assert result.num_segments == 1
    assert segment("a" * 70 + CYRILLIC).num_segments == 2


def test_emoji_at_67_unit_boundary_moves_to_next_segment() -> None:
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 10
    result = segment(body)
    assert result.units == 78
    assert result.segments == (CYRILLIC * 66, EMOJI + CYRILLIC * 10)


def test_emoji_ending_exactly_at_67_units_stays() -> None:
    body = CYRILLIC * 65 + EMOJI + CYRILLIC * 10
    result = segment(body)
    assert result.segments == (CYRILLIC * 65 + EMOJI, CYRILLIC * 10)


def test_emoji_count_two_units_in_single_segment() -> None:
    assert segment(EMOJI * 35) == Segmentation("UCS-2", 1, (EMOJI * 35,), 70)
    assert segment(EMOJI * 36).segments == (EMOJI * 33, EMOJI * 3)


def test_segmentation_is_frozen() -> None:
    result = segment("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.units = 3  # type: ignore[misc]


# --- properties --------------------------------------------------------------------------

_GSM_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)
_INTERESTING = st.sampled_from(_GSM_CHARS) | st.sampled_from(
    [CYRILLIC, EMOJI, "\u00e1", "\u4e2d", "\U0001f44d", "\U0001f3fd", "\u200d"]
)
bodies = (
    st.text(alphabet=st.sampled_from(_GSM_CHARS), max_size=700)
    | st.text(alphabet=_INTERESTING, max_size=400)
    | st.text(max_size=300)
)


@given(bodies)
def test_segments_join_back_to_body(body: str) -> None:
    assert "".join(segment(body).segments) == body


@given(bodies)
def test_every_segment_is_within_its_limit(body: str) -> None:
    result = segment(body)
    gsm = result.encoding == "GSM-7"
    limit = (160 if gsm else 70) if result.num_segments == 1 else (153 if gsm else 67)
    for part in result.segments:
        assert _cost(result.encoding, part) <= limit
    assert sum(_cost(result.encoding, part) for part in result.segments) == result.units


@given(bodies)
def test_segments_are_packed_greedily(body: str) -> None:
    # No part could have taken the next part's first character: this is what makes
    # the split the minimum number of parts.
    result = segment(body)
    limit = 153 if result.encoding == "GSM-7" else 67
    for part, following in zip(result.segments, result.segments[1:], strict=False):
        assert _cost(result.encoding, part + following[0]) > limit


@given(bodies)
def test_surrogate_pairs_are_never_split(body: str) -> None:
    for part in segment(body).segments:
        units = _utf16_units(part)
        if units:
            assert not 0xDC00 <= units[0] <= 0xDFFF
            assert not 0xD800 <= units[-1] <= 0xDBFF


@given(bodies)
def test_num_segments_matches_segments(body: str) -> None:
    result = segment(body)
    assert result.num_segments == len(result.segments) >= 1
    assert all(result.segments) or body == ""


@given(bodies)
def test_gsm7_chosen_iff_every_char_is_encodable(body: str) -> None:
    encodable = all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body)
    assert (segment(body).encoding == "GSM-7") is encodable
