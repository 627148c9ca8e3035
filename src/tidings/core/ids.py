"""Resource ids: a type prefix and a ULID, so ids sort by creation time."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# Two digits at a time: every id of every row is made here, and 13 lookups of 10 bits
# cost less than half of 26 divisions by 32 in Python.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))  # the 130 bits of 26 digits, from the top


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 chars of randomness."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")  # 48 + 80 bits
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def id_floor(prefix: str, at_millis: int) -> str:
    """The smallest id ``new_id(prefix)`` can give at ``at_millis`` (Unix milliseconds) or
    later: ``id >= id_floor(...)`` picks rows created since then through the id's index."""
    value = at_millis << 80
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
