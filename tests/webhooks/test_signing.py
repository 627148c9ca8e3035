"""Webhook signatures: sign/verify round trips and every way a header can be wrong."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.webhooks.signing import (
    MAX_HEADER_LENGTH,
    SIGNATURE_HEADER,
    SignatureError,
    new_webhook_secret,
    sign,
    verify,
)

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","type":"message.delivered"}'
T = 1_700_000_000


def _v1(secret: str, body: bytes, timestamp: int) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "Tidings-Signature"


def test_sign_format_matches_documented_scheme() -> None:
    assert sign(SECRET, BODY, timestamp=T) == f"t={T},v1={_v1(SECRET, BODY, T)}"


def test_round_trip() -> None:
    verify(SECRET, BODY, sign(SECRET, BODY, timestamp=T), now=T)


def test_round_trip_empty_body() -> None:
    verify(SECRET, b"", sign(SECRET, b"", timestamp=T), now=T)


def test_tolerates_whitespace_and_uppercase_hex() -> None:
    header = f"t={T}, v1={_v1(SECRET, BODY, T).upper()}"
    verify(SECRET, BODY, header, now=T)


def test_tampered_body() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify(SECRET, BODY + b" ", header, now=T)


def test_wrong_secret() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify("whsec_other", BODY, header, now=T)


def test_timestamp_is_covered_by_the_signature() -> None:
    signature = _v1(SECRET, BODY, T)
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify(SECRET, BODY, f"t={T + 1},v1={signature}", now=T)


def test_expired_timestamp() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    verify(SECRET, BODY, header, now=T + 300)
    with pytest.raises(SignatureError, match="301s old"):
        verify(SECRET, BODY, header, now=T + 301)


def test_future_timestamp_beyond_tolerance() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    verify(SECRET, BODY, header, now=T - 300)
    with pytest.raises(SignatureError, match="in the future"):
        verify(SECRET, BODY, header, now=T - 301)


def test_custom_tolerance() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    verify(SECRET, BODY, header, now=T + 3000, tolerance_seconds=3600)
    with pytest.raises(SignatureError, match="old"):
        verify(SECRET, BODY, header, now=T + 11, tolerance_seconds=10)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("t=", "empty t= timestamp"),
        ("v1=abc", "no t= timestamp"),
        ("t=abc,v1=..", "not an integer"),
        ("t=1,v1=zz", "no v1 signature matches"),
        (f"t={T}", "no v1= signature"),
        (f"t={T},v0=abc", "no v1= signature"),
        ("garbage", "malformed"),
        ("t=1,,v1=ab", "malformed"),
        ("=1", "malformed"),
        (f"t={T},t={T},v1=ab", "more than one t="),
        ("t=-5,v1=ab", "not an integer"),
        ("t=+5,v1=ab", "not an integer"),
        ("t=1_000,v1=ab", "not an integer"),
        ("t=١٢٣,v1=ab", "not an integer"),
        ("t=" + "9" * 5000 + ",v1=ab", "longer than"),
        ("t=" + "9" * 100 + ",v1=ab", "not an integer"),
        (f"t={T},v1=" + "a" * MAX_HEADER_LENGTH, "longer than"),
    ],
)
def test_garbage_headers(header: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, BODY, header, now=T)


def test_malformed_header_checked_before_signature() -> None:
    with pytest.raises(SignatureError, match="not an integer"):
        verify(SECRET, BODY, f"t=abc,v1={_v1(SECRET, BODY, T)}", now=T)


def test_multiple_v1_for_secret_rotation() -> None:
    old, new = "whsec_old", "whsec_new"
    header = f"t={T},v1={_v1(old, BODY, T)},v1={_v1(new, BODY, T)}"
    verify(old, BODY, header, now=T)
    verify(new, BODY, header, now=T)
    with pytest.raises(SignatureError):
        verify("whsec_third", BODY, header, now=T)


def test_malformed_v1_entries_do_not_hide_a_good_one() -> None:
    header = f"t={T},v1=zz,v1=,v1=é,v1={_v1(SECRET, BODY, T)}"
    verify(SECRET, BODY, header, now=T)


def test_unknown_schemes_are_ignored() -> None:
    header = f"v2=something,t={T},v1={_v1(SECRET, BODY, T)}"
    verify(SECRET, BODY, header, now=T)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", BODY, timestamp=T)


def test_negative_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        sign(SECRET, BODY, timestamp=-1)


def test_new_webhook_secret() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    encoded = secret.removeprefix("whsec_")
    assert "=" not in encoded
    assert len(base64.urlsafe_b64decode(encoded + "=")) == 32
    assert new_webhook_secret() != secret


secrets_st = st.text(min_size=1, max_size=64)
timestamps_st = st.integers(min_value=0, max_value=10**12)


@given(secret=secrets_st, body=st.binary(max_size=2048), timestamp=timestamps_st,
       skew=st.integers(min_value=-300, max_value=300))
def test_verify_accepts_whatever_sign_produces(
    secret: str, body: bytes, timestamp: int, skew: int
) -> None:
    verify(secret, body, sign(secret, body, timestamp=timestamp), now=timestamp + skew)


@given(secret=secrets_st, body=st.binary(max_size=256), timestamp=timestamps_st,
       other=st.binary(max_size=256))
def test_verify_rejects_any_other_body(
    secret: str, body: bytes, timestamp: int, other: bytes
) -> None:
    header = sign(secret, body, timestamp=timestamp)
    if other != body:
        with pytest.raises(SignatureError):
            verify(secret, other, header, now=timestamp)


header_like = st.lists(
    st.tuples(
        st.sampled_from(["t", "v1", "v0", "", "T", " t"]),
        st.sampled_from(["=", "", "=="]),
        st.text(max_size=80),
    ),
    max_size=6,
).map(lambda parts: ",".join(k + sep + v for k, sep, v in parts))


@given(header=st.one_of(st.text(max_size=300), header_like), now=timestamps_st)
def test_random_headers_only_raise_signature_error(header: str, now: int) -> None:
    with contextlib.suppress(SignatureError):
        verify(SECRET, BODY, header, now=now)
