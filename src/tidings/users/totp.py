"""A second factor for people who log in: time-based one-time codes and recovery codes.

The codes follow RFC 6238 as authenticator apps expect them: HMAC-SHA-1, six digits, a
new code every 30 seconds. Everything here is pure: no database, no wall clock (the caller
passes ``now``), no logging. Exception messages never carry a secret or a code.

Recovery codes are the way back in when the phone is lost. Only a keyed hash of each is
stored (``users/mfa.py``, under the account's index key), so a copy of the database
alone does not give them away.
"""

from __future__ import annotations

import hmac
import io
import math
import secrets
from datetime import datetime

import pyotp
import segno

ISSUER = "Tidings"
DIGITS = 6
STEP_SECONDS = 30
# RFC 6238 section 5.2: one step either side covers a clock that drifts a little and a
# person who types the code just as it changes.
STEPS_OF_SLACK = 1

# No 0/o, 1/l/i: a code read off paper is typed back without guessing. 31 symbols, ten of
# them per code: about 49.5 bits, far beyond guessing with the attempts a login allows.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_GROUPS = (4, 4, 2)
RECOVERY_CODE_COUNT = 10
# The keys the caller derives from the key store are 32 bytes; less would make the
# hashes easier to attack than the key store promises.

_ASCII_DIGITS = frozenset("0123456789")


def new_secret() -> str:
    """A fresh TOTP secret: 160 random bits in base32, as RFC 4226 recommends."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, account_name: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from a QR code."""
    return _totp(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG document to show on the enrolment page."""
    return str(_qr(uri).svg_inline(scale=4))


def qr_data_uri(uri: str) -> str:
    """The URI as a QR code in an ``<img>``'s ``data:`` URL (an SVG with its namespace,
    which an image needs and an inline ``<svg>`` does not)."""
    return str(_qr(uri).svg_data_uri(scale=4))


def qr_png(uri: str) -> bytes:
    """The URI as a QR code, a PNG image (segno writes PNG itself, without Pillow)."""
    buffer = io.BytesIO()
    _qr(uri).save(buffer, kind="png", scale=4)
    return buffer.getvalue()


def verify(secret: str, code: str, *, now: datetime, last_used_step: int | None) -> int | None:
    """The time step ``code`` belongs to, or None if it is refused.

    A code is accepted for the step of ``now`` or one step either side. A step at or
    before ``last_used_step`` is refused, so a code seen once cannot be replayed, nor an
    older one. ``code`` must be exactly six ASCII digits once surrounding whitespace is
    stripped; anything else is refused before any cryptography runs. The caller stores
    the returned step as its new ``last_used_step``.
    """
    current = current_step(now)
    candidate = _six_ascii_digits(code)
    if candidate is None:
        return None
    totp = _totp(secret)
    matched: int | None = None
    # Every candidate step is computed and compared, so the time taken does not say which
    # step (if any) matched; the newest match wins.
    for step in range(current - STEPS_OF_SLACK, current + STEPS_OF_SLACK + 1):
        if step < 0:
            continue
        expected = totp.generate_otp(step).encode("ascii")
        same = hmac.compare_digest(candidate, expected)
        fresh = last_used_step is None or step > last_used_step
        if same and fresh:
            matched = step
    return matched


def current_step(now: datetime) -> int:
    """The RFC 6238 time step of ``now``: unix seconds divided by 30, rounded down."""
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return math.floor(now.timestamp()) // STEP_SECONDS


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``count`` distinct recovery codes, shown once to the person, such as ``k7qm-3xwa-9p``."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(_new_recovery_code())
    return sorted(codes)


def normalise_recovery_code(code: str) -> str:
    """The recovery code as generated: lower case, without spaces or dashes."""
    return "".join(code.split()).replace("-", "").lower()


def _new_recovery_code() -> str:
    symbols = [secrets.choice(RECOVERY_ALPHABET) for _ in range(sum(RECOVERY_GROUPS))]
    groups, start = [], 0
    for size in RECOVERY_GROUPS:
        groups.append("".join(symbols[start : start + size]))
        start += size
    return "-".join(groups)


def _six_ascii_digits(code: str) -> bytes | None:
    """``code`` as bytes if it is six ASCII digits once surrounding whitespace is stripped.

    ``str.isdigit`` would let through Arabic-Indic or full-width digits, which pyotp
    would then fold into ASCII ones; only 0-9 are codes here.
    """
    if not isinstance(code, str):
        return None
    stripped = code.strip()
    if len(stripped) != DIGITS or not _ASCII_DIGITS.issuperset(stripped):
        return None
    return stripped.encode("ascii")


def _totp(secret: str) -> pyotp.TOTP:
    try:
        return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    except ValueError:
        # pyotp's own message is safe today, but the secret must never reach a log.
        raise ValueError("the TOTP secret is not valid base32 of at least 112 bits") from None


def _qr(uri: str) -> segno.QRCode:
    # Error correction "M" survives a smudged screen; segno may raise it if space allows.
    return segno.make_qr(uri, error="m")
