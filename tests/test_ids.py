"""Resource ids: prefix, Crockford base32 ULID, sortable by creation time."""

from __future__ import annotations

import re
import time

from tidings.core.ids import id_floor, new_id

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    """The ULID digits written one at a time: the reference ``new_id`` must agree with."""
    digits = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        digits.append(ALPHABET[rem])
    return "".join(reversed(digits))


def _decode(digits: str) -> int:
    value = 0
    for char in digits:
        value = value * 32 + ALPHABET.index(char)
    return value


def test_an_id_is_the_prefix_and_26_crockford_digits() -> None:
    made = new_id("msg")
    assert re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", made), made


def test_the_first_ten_digits_are_the_milliseconds_of_creation() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("msg")
    after = time.time_ns() // 1_000_000
    assert before <= _decode(made[4:14]) <= after


def test_the_digits_are_those_of_the_48_bit_time_and_80_random_bits() -> None:
    for _ in range(200):
        digits = new_id("x")[2:]
        value = _decode(digits)
        assert value < 2 ** 128
        assert _base32(value >> 80, 10) + _base32(value & (2 ** 80 - 1), 16) == digits


def test_ids_sort_by_creation_time_and_do_not_repeat() -> None:
    first = [new_id("evt") for _ in range(1000)]
    time.sleep(0.002)
    later = new_id("evt")
    assert len(set(first)) == 1000
    assert all(earlier < later for earlier in first)


def test_an_id_floor_sorts_below_every_id_made_from_then_on_and_above_earlier_ones() -> None:
    before = new_id("msg")
    time.sleep(0.002)
    now_ms = time.time_ns() // 1_000_000
    floor = id_floor("msg", now_ms)
    after = new_id("msg")
    assert before < floor <= after
    assert floor == "msg_" + _base32(now_ms, 10) + "0" * 16
    assert id_floor("msg", now_ms + 1) > floor
