"""Putting long incoming messages together from their parts, in any order."""

from __future__ import annotations

from tidings.connectors.smpp.coding import ConcatInfo
from tidings.connectors.smpp.concat import PartAssembler


def test_parts_in_any_order_make_the_whole_once_the_last_is_in() -> None:
    parts: PartAssembler[str, int] = PartAssembler()
    assert parts.add("m", ConcatInfo(7, 3, 2), "b", 2) is None
    assert parts.add("other", ConcatInfo(7, 2, 1), "x", 9) is None  # another message
    assert parts.add("m", ConcatInfo(7, 3, 3), "c", 3) is None
    assert parts.add("m", ConcatInfo(7, 3, 1), "a", 1) == ("abc", [1, 2, 3])
    assert parts.stale(older_than_seconds=0) == [("other", "x", [9])]
    assert parts.stale(older_than_seconds=0) == []


def test_a_message_missing_parts_stays_until_it_is_stale() -> None:
    parts: PartAssembler[str, int] = PartAssembler()
    parts.add("m", ConcatInfo(1, 2, 2), "second", 2)
    assert parts.stale(older_than_seconds=3600) == []
    assert parts.stale(older_than_seconds=0) == [("m", "second", [2])]


def test_a_message_missing_parts_can_be_taken_out_by_its_key() -> None:
    parts: PartAssembler[str, int] = PartAssembler()
    parts.add("m", ConcatInfo(1, 3, 2), "second", 2)
    parts.add("m", ConcatInfo(1, 3, 1), "first", 1)
    assert parts.take("other") is None
    assert parts.take("m") == ("firstsecond", [1, 2])
    assert parts.take("m") is None
    assert parts.add("m", ConcatInfo(1, 3, 3), "third", 3) is None  # a new message now
