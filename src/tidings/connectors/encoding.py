"""SMS encoding choice and segmentation (3GPP TS 23.038 alphabets, TS 23.040 concatenation).

Pure and allocation-light: ``segment`` runs once per outbound message, so the common
cases (plain GSM-7 text, BMP-only UCS-2 text) are handled with C-level set and string
operations and never loop over characters in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 7-bit default alphabet in code order 0x00-0x7F. 0x1B (ESC) is left out: it is
# not a character but the prefix of an extension-table character. Greek capitals are
# spelled as escapes so that look-alikes (e.g. OHM SIGN U+2126 for Omega) cannot creep in.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039eÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Extension table: each of these is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

_GSM7_ALL: frozenset[str] = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE_LIMIT = 160
# A concatenated part loses 6 header octets (the UDH) = 48 bits, rounded up to 7 septets.
GSM7_MULTI_LIMIT = 153
UCS2_SINGLE_LIMIT = 70
# The same 6 UDH octets are 3 UTF-16 code units.
UCS2_MULTI_LIMIT = 67


@dataclass(frozen=True, slots=True)
class Segmentation:
    """How a body will travel: its encoding and the parts it is split into.

    ``units`` counts septets for GSM-7 (extension characters count two) and UTF-16
    code units for UCS-2 (astral characters such as emoji count two).
    """

    encoding: Encoding
    num_segments: int
    segments: tuple[str, ...]
    units: int


def segment(body: str) -> Segmentation:
    """Choose the encoding for ``body`` and split it into SMS parts.

    GSM-7 is used when every character is in the default alphabet or its extension
    table, UCS-2 otherwise. A body that fits one message (160 septets / 70 units) is one
    part; longer bodies are split into 153-septet / 67-unit parts. An extension
    character (ESC + code) or a UTF-16 surrogate pair is never split across parts: if it
    does not fit, it starts the next part. ``"".join(result.segments) == body`` always;
    the empty body is a single empty GSM-7 part.

    Surrogate code points in ``body`` itself (not valid Unicode text) are counted as
    one UTF-16 unit each and are not kept together.
    """
    if GSM7_BASIC.issuperset(body):
        return _split_uniform("GSM-7", body, GSM7_SINGLE_LIMIT, GSM7_MULTI_LIMIT)
    if _GSM7_ALL.issuperset(body):
        units = len(body) + sum(body.count(char) for char in GSM7_EXTENSION)
        return _split_packed(
            "GSM-7", body, units, GSM7_SINGLE_LIMIT, GSM7_MULTI_LIMIT,
            GSM7_EXTENSION.__contains__,
        )
    # "surrogatepass" so that stray surrogate code points are counted, not an error.
    units = len(body.encode("utf-16-le", "surrogatepass")) // 2
    if units == len(body):
        return _split_uniform("UCS-2", body, UCS2_SINGLE_LIMIT, UCS2_MULTI_LIMIT)
    return _split_packed(
        "UCS-2", body, units, UCS2_SINGLE_LIMIT, UCS2_MULTI_LIMIT, _is_astral,
    )


def _is_astral(char: str) -> bool:
    # Outside the BMP, UTF-16 needs a surrogate pair: two code units.
    return char > "\uffff"


def _split_uniform(encoding: Encoding, body: str, single: int, multi: int) -> Segmentation:
    """Split a body whose every character costs exactly one unit: plain slicing."""
    size = len(body)
    if size <= single:
        return Segmentation(encoding, 1, (body,), size)
    parts = tuple(body[start:start + multi] for start in range(0, size, multi))
    return Segmentation(encoding, len(parts), parts, size)


def _split_packed(
    encoding: Encoding,
    body: str,
    units: int,
    single: int,
    multi: int,
    is_double: Callable[[str], bool],
) -> Segmentation:
    """Split greedily when some characters cost two units and must not be cut in half."""
    if units <= single:
        return Segmentation(encoding, 1, (body,), units)
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(body):
        cost = 2 if is_double(char) else 1
        if used + cost > multi:
            parts.append(body[start:index])
            start, used = index, 0
        used += cost
    parts.append(body[start:])
    return Segmentation(encoding, len(parts), tuple(parts), units)
