"""Signatures on outbound webhooks, and the check receivers run against them.

Every webhook Tidings sends carries a ``Tidings-Signature`` header of the form::

    Tidings-Signature: t=1700000000,v1=<64 lowercase hex digits>

``t`` is the Unix time (seconds) at which the delivery was signed, and ``v1`` is the
lowercase hex HMAC-SHA256, keyed with the endpoint's whole secret string
(``whsec_...``, encoded as UTF-8), of ``f"{t}.".encode() + raw_request_body``.
While a secret is being rotated the header may carry several ``v1`` entries, one per
active secret; a receiver accepts the request if any of them matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

SIGNATURE_HEADER = "Tidings-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 4096
"""Longer headers are rejected before parsing (room for dozens of ``v1`` entries)."""

_MAX_TIMESTAMP_DIGITS = 15
_HEX_DIGITS = frozenset("0123456789abcdef")
_SIGNATURE_HEX_LENGTH = hashlib.sha256().digest_size * 2


class SignatureError(ValueError):
    """A webhook signature header is malformed, stale, or does not match the body."""


@dataclass
class _ParsedHeader:
    timestamp: int | None = None
    signatures: list[str] = field(default_factory=list)


def new_webhook_secret() -> str:
    """Return a fresh endpoint secret: ``whsec_`` + 32 random bytes, urlsafe base64."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
    return SECRET_PREFIX + raw.decode("ascii")


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    if not secret:
        raise ValueError("webhook secret must not be empty")
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """Return the ``Tidings-Signature`` header value for ``body`` signed at ``timestamp``.

    >>> sign("whsec_test", b'{"id":"evt_1"}', timestamp=1700000000)[:13]
    't=1700000000,'
    """
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a ``Tidings-Signature`` header; return ``None`` if it is genuine and fresh.

    Pass the raw request body exactly as received (before any JSON parsing) and the
    current Unix time. Raises :class:`SignatureError` when the header is malformed, has
    no ``t`` or ``v1``, has a non-integer ``t``, no ``v1`` entry matches the body, or the
    timestamp is more than ``tolerance_seconds`` away from ``now`` (replay protection).
    The signature is checked before the timestamp, so a "too old"/"in the future" error
    means the request was genuinely signed by Tidings but the clocks disagree or it was
    replayed.

    Receiver example (any web framework)::

        import json
        import time

        from tidings.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify

        def handle(request):
            try:
                verify(ENDPOINT_SECRET, request.body, request.headers[SIGNATURE_HEADER],
                       now=int(time.time()))
            except (KeyError, SignatureError):
                return 400
            event = json.loads(request.body)
            ...
    """
    parsed = _parse_header(header)
    if parsed.timestamp is None:
        raise SignatureError("signature header has no t= timestamp")
    if not parsed.signatures:
        raise SignatureError("signature header has no v1= signature")
    expected = _digest(secret, body, parsed.timestamp).encode("ascii")
    if not _any_matches(expected, parsed.signatures):
        raise SignatureError("no v1 signature matches the body and secret")
    _check_freshness(parsed.timestamp, now=now, tolerance_seconds=tolerance_seconds)


def _parse_header(header: str) -> _ParsedHeader:
    if not header or not header.strip():
        raise SignatureError("signature header is empty")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError(f"signature header is longer than {MAX_HEADER_LENGTH} characters")
    parsed = _ParsedHeader()
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise SignatureError(f"malformed signature header element {item.strip()[:40]!r}")
        if key == "t":
            if parsed.timestamp is not None:
                raise SignatureError("signature header has more than one t= timestamp")
            parsed.timestamp = _parse_timestamp(value)
        elif key == "v1":
            parsed.signatures.append(value)
        # Other keys (future schemes such as v2) are ignored.
    return parsed


def _parse_timestamp(value: str) -> int:
    if not value:
        raise SignatureError("signature header has an empty t= timestamp")
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"signature timestamp is not an integer: {value[:20]!r}")
    return int(value)


def _any_matches(expected: bytes, candidates: list[str]) -> bool:
    matched = False
    for candidate in candidates:
        normalized = candidate.lower()
        if len(normalized) != _SIGNATURE_HEX_LENGTH or not _HEX_DIGITS.issuperset(normalized):
            continue
        # No early exit: every well-formed candidate is compared in constant time.
        matched |= hmac.compare_digest(expected, normalized.encode("ascii"))
    return matched


def _check_freshness(timestamp: int, *, now: int, tolerance_seconds: int) -> None:
    age = now - timestamp
    if age > tolerance_seconds:
        raise SignatureError(
            f"signature timestamp is {age}s old, beyond the {tolerance_seconds}s tolerance"
        )
    if -age > tolerance_seconds:
        raise SignatureError(
            f"signature timestamp is {-age}s in the future, "
            f"beyond the {tolerance_seconds}s tolerance"
        )
