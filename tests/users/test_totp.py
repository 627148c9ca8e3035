"""TOTP second factor and recovery codes: RFC 6238 vectors, drift, replay, bad input."""

from __future__ import annotations

import base64
import hmac
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest

from tidings.core.clock import FakeClock
from tidings.users import totp

# RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")
# (unix time, the 8-digit SHA-1 TOTP the RFC lists for it)
RFC_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]

# A time in the middle of a step, so ±30 s moves exactly one step.
START = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)


def _code(secret: str, when: datetime) -> str:
    """The 6-digit code pyotp itself computes for ``when``: the reference verify must agree with."""
    return pyotp.TOTP(secret).at(when)


def _step(when: datetime) -> int:
    return int(when.timestamp()) // 30


@pytest.fixture
def secret() -> str:
    return totp.new_secret()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# --- RFC 6238 -------------------------------------------------------------------------


@pytest.mark.parametrize(("unix_time", "eight_digits"), RFC_SHA1_VECTORS)
def test_pyotp_reproduces_the_rfc_6238_sha1_vectors(unix_time: int, eight_digits: str) -> None:
    assert pyotp.TOTP(RFC_SECRET, digits=8).at(unix_time) == eight_digits


@pytest.mark.parametrize(("unix_time", "eight_digits"), RFC_SHA1_VECTORS)
def test_verify_accepts_the_rfc_6238_codes_at_their_times(
    unix_time: int, eight_digits: str
) -> None:
    now = datetime.fromtimestamp(unix_time, UTC)
    six_digits = pyotp.TOTP(RFC_SECRET).at(unix_time)
    # Truncation keeps the low digits, so the 6-digit code is the vector's last six.
    assert six_digits == eight_digits[-6:]
    assert totp.verify(RFC_SECRET, six_digits, now=now, last_used_step=None) == unix_time // 30


@pytest.mark.parametrize(("unix_time", "eight_digits"), RFC_SHA1_VECTORS)
def test_verify_refuses_the_rfc_codes_far_from_their_times(
    unix_time: int, eight_digits: str
) -> None:
    later = datetime.fromtimestamp(unix_time + 3600, UTC)
    assert totp.verify(RFC_SECRET, eight_digits[-6:], now=later, last_used_step=None) is None


# --- the window of one step either side -----------------------------------------------


@pytest.mark.parametrize("steps", [-1, 0, 1])
def test_a_code_one_step_either_side_is_accepted_with_its_own_step(
    secret: str, clock: FakeClock, steps: int
) -> None:
    issued = clock.now() + timedelta(seconds=30 * steps)
    code = _code(secret, issued)
    assert totp.verify(secret, code, now=clock.now(), last_used_step=None) == _step(issued)


@pytest.mark.parametrize("steps", [-3, -2, 2, 3])
def test_a_code_two_steps_or_more_away_is_refused(
    secret: str, clock: FakeClock, steps: int
) -> None:
    code = _code(secret, clock.now() + timedelta(seconds=30 * steps))
    # The test is only meaningful if that code is not also a code of the window.
    window = {_code(secret, clock.now() + timedelta(seconds=30 * s)) for s in (-1, 0, 1)}
    assert code not in window
    assert totp.verify(secret, code, now=clock.now(), last_used_step=None) is None


def test_the_edges_of_a_step_belong_to_it(secret: str) -> None:
    first = datetime.fromtimestamp(_step(START) * 30, UTC)
    last = first + timedelta(seconds=29, microseconds=999_999)
    code = _code(secret, first)
    assert totp.verify(secret, code, now=first, last_used_step=None) == _step(START)
    assert totp.verify(secret, code, now=last, last_used_step=None) == _step(START)
    three_steps_on = first + timedelta(seconds=90)
    assert totp.verify(secret, code, now=three_steps_on, last_used_step=None) is None


def test_a_code_for_another_secret_is_refused(secret: str, clock: FakeClock) -> None:
    other = totp.new_secret()
    code = _code(other, clock.now())
    if code == _code(secret, clock.now()):  # one chance in a million
        pytest.fail("two fresh secrets gave the same code; run again")
    assert totp.verify(secret, code, now=clock.now(), last_used_step=None) is None


# --- replay ---------------------------------------------------------------------------


def test_a_used_step_is_refused_a_second_time_and_the_next_one_accepted(
    secret: str, clock: FakeClock
) -> None:
    code = _code(secret, clock.now())
    used = totp.verify(secret, code, now=clock.now(), last_used_step=None)
    assert used == _step(clock.now())

    assert totp.verify(secret, code, now=clock.now(), last_used_step=used) is None
    clock.advance(20)  # still within the window of the used code
    assert totp.verify(secret, code, now=clock.now(), last_used_step=used) is None

    clock.advance(10)
    following = _code(secret, clock.now())
    assert totp.verify(secret, following, now=clock.now(), last_used_step=used) == used + 1


def test_a_step_older_than_the_last_used_one_is_refused(secret: str, clock: FakeClock) -> None:
    previous = _code(secret, clock.now() - timedelta(seconds=30))
    assert totp.verify(secret, previous, now=clock.now(), last_used_step=None) is not None
    last_used = _step(clock.now())
    assert totp.verify(secret, previous, now=clock.now(), last_used_step=last_used) is None


def test_a_code_ahead_of_the_last_used_step_is_accepted(secret: str, clock: FakeClock) -> None:
    ahead = clock.now() + timedelta(seconds=30)
    code = _code(secret, ahead)
    last_used = _step(clock.now())
    assert totp.verify(secret, code, now=clock.now(), last_used_step=last_used) == last_used + 1


# --- what is a code at all ------------------------------------------------------------

# Digits of other scripts, written by code point: U+FF10 FULLWIDTH DIGIT ZERO onwards and
# U+0660 ARABIC-INDIC DIGIT ZERO onwards.
_FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
_ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))

# Each entry turns the right code into something that must be refused; built from the
# right code, so a check that ignored the form would accept them.
_GARBLED = {
    "empty": lambda code: "",
    "five digits": lambda code: code[:5],
    "seven digits": lambda code: code + "0",
    "a letter": lambda code: code[:2] + "a" + code[3:],
    "arabic-indic digits": lambda code: code.translate(_ARABIC_INDIC),
    "full-width digits": lambda code: code.translate(_FULL_WIDTH),
    "a space inside": lambda code: code[:3] + " " + code[3:],
    "a dash inside": lambda code: code[:3] + "-" + code[3:],
    "a sign": lambda code: "+" + code[1:],
    "a nul byte": lambda code: code + "\x00",
    "None": lambda code: "None",
    "null": lambda code: "null",
    "undefined": lambda code: "undefined",
}


@pytest.mark.parametrize("garble", _GARBLED.values(), ids=list(_GARBLED))
def test_anything_but_six_ascii_digits_is_refused(
    secret: str, clock: FakeClock, garble: Any
) -> None:
    right = _code(secret, clock.now())
    assert totp.verify(secret, right, now=clock.now(), last_used_step=None) is not None
    assert totp.verify(secret, garble(right), now=clock.now(), last_used_step=None) is None


def test_pyotp_would_take_full_width_digits_so_the_refusal_is_ours(
    secret: str, clock: FakeClock
) -> None:
    right = _code(secret, clock.now())
    assert pyotp.TOTP(secret).verify(right.translate(_FULL_WIDTH), for_time=clock.now())


@pytest.mark.parametrize("wrap", [" {} ", "  {}", "{} ", "\t{}\n"])
def test_surrounding_whitespace_is_stripped(secret: str, clock: FakeClock, wrap: str) -> None:
    code = wrap.format(_code(secret, clock.now()))
    assert totp.verify(secret, code, now=clock.now(), last_used_step=None) == _step(clock.now())


@pytest.mark.parametrize(
    "garbage", ["", "12345", "1234567", "12a456", "\u0661\u0662\u0663\u0664\u0665\u0666", "None"]
)
def test_garbage_is_refused_without_calling_pyotp(
    monkeypatch: pytest.MonkeyPatch, secret: str, garbage: str
) -> None:
    def no_pyotp(*args: object, **kwargs: object) -> None:
        raise AssertionError("pyotp was called for a code that is not six digits")

    monkeypatch.setattr(totp.pyotp, "TOTP", no_pyotp)
    assert totp.verify(secret, garbage, now=START, last_used_step=None) is None


def test_every_step_of_the_window_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, secret: str, clock: FakeClock
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(totp.hmac, "compare_digest", spy)
    earliest = _code(secret, clock.now() - timedelta(seconds=30))
    assert totp.verify(secret, earliest, now=clock.now(), last_used_step=None) is not None
    # The first step matched, yet the other two were compared too.
    assert len(compared) == 3


def test_a_naive_now_is_an_error(secret: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        totp.verify(secret, "123456", now=datetime(2026, 3, 1, 12), last_used_step=None)


def test_a_bad_secret_is_an_error_that_does_not_show_it() -> None:
    bad = "NOT-BASE32-SECRET-1!"
    with pytest.raises(ValueError, match="secret is not valid base32") as caught:
        totp.verify(bad, "123456", now=START, last_used_step=None)
    assert bad not in str(caught.value)
    assert caught.value.__cause__ is None


# --- enrolment ------------------------------------------------------------------------


def test_a_new_secret_is_160_random_bits_in_base32() -> None:
    first, second = totp.new_secret(), totp.new_secret()
    assert len(base64.b32decode(first)) == 20
    assert re.fullmatch(r"[A-Z2-7]{32}", first)
    assert first != second


def test_the_provisioning_uri_parses_back_to_the_same_secret_issuer_and_name(
    secret: str,
) -> None:
    uri = totp.provisioning_uri(secret, account_name="ada@example.com", issuer="Acme Tidings")
    assert uri.startswith("otpauth://totp/")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.issuer == "Acme Tidings"
    assert parsed.name == "ada@example.com"
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")


def test_the_issuer_is_tidings_unless_told(secret: str) -> None:
    parsed = pyotp.parse_uri(totp.provisioning_uri(secret, account_name="ada"))
    assert parsed.issuer == "Tidings"


def test_the_qr_code_is_an_svg_document(secret: str) -> None:
    svg = totp.qr_svg(totp.provisioning_uri(secret, account_name="ada@example.com"))
    assert svg.lstrip().startswith("<svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")


def test_the_qr_code_is_also_a_png_image(secret: str) -> None:
    png = totp.qr_png(totp.provisioning_uri(secret, account_name="ada@example.com"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


# --- recovery codes -------------------------------------------------------------------


def test_ten_distinct_recovery_codes_without_look_alikes() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[2-9a-hjkmnp-z]{4}-[2-9a-hjkmnp-z]{4}-[2-9a-hjkmnp-z]{2}", code)


def test_as_many_recovery_codes_as_asked() -> None:
    assert len(set(totp.new_recovery_codes(count=25))) == 25


def test_the_recovery_alphabet_has_no_look_alikes_and_about_fifty_bits() -> None:
    assert not set("01ilo") & set(totp.RECOVERY_ALPHABET)
    bits = sum(totp.RECOVERY_GROUPS) * math.log2(len(totp.RECOVERY_ALPHABET))
    assert 48 <= bits <= 52
