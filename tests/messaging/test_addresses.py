"""Phone number and sender id validation."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tidings.messaging.addresses import (
    AddressError,
    is_phone_number,
    normalize_e164,
    normalize_sender,
)

# --- normalize_e164 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "+12025550173",  # US
        "+447911123456",  # UK mobile
        "+442079460000",  # UK London landline
        "+4915123456789",  # DE mobile
        "+4930123456",  # DE Berlin landline
        "+33612345678",  # FR mobile
        "+33142685300",  # FR Paris landline
        "+5511987654321",  # BR mobile
        "+919876543210",  # IN mobile
        "+390612345678",  # IT: the leading 0 after the country code is kept
    ],
)
def test_valid_e164_numbers_are_returned_unchanged(number: str) -> None:
    assert normalize_e164(number) == number
    assert is_phone_number(number)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 202 555 0173", "+12025550173"),
        ("+1-202-555-0173", "+12025550173"),
        ("+1.202.555.0173", "+12025550173"),
        ("+1 (202) 555-0173", "+12025550173"),
        ("+44 7911 123456", "+447911123456"),
        ("+44 (0) 7911 123456", "+447911123456"),  # national trunk prefix in brackets
        ("+49 30 123456", "+4930123456"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+55 (11) 98765-4321", "+5511987654321"),
        ("+91 98765 43210", "+919876543210"),
        ("+1 202 555 0173 ", "+12025550173"),
    ],
)
def test_formatting_variants_normalise(raw: str, expected: str) -> None:
    assert normalize_e164(raw) == expected
    assert not is_phone_number(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="whitespace-only"),
        pytest.param("+", id="plus-only"),
        pytest.param("+1202", id="too-short"),
        pytest.param("+12025550173999999", id="too-many-digits"),
        pytest.param("12025550173", id="no-plus"),
        pytest.param(" +12025550173", id="leading-space"),
        pytest.param("0044 7911 123456", id="international-prefix-instead-of-plus"),
        pytest.param("+1 202 CALL NOW", id="letters"),
        pytest.param("+1 202 555 0173 ext 5", id="extension"),
        pytest.param("+1 202 555 0173;ext=5", id="rfc3966-extension"),
        pytest.param("+\u0661\u0662\u0660\u0662\u0665\u0665\u0665\u0660\u0661\u0667\u0663",
                     id="arabic-indic-digits"),
        pytest.param("+\uff11\uff12\uff10\uff12\uff15\uff15\uff15\uff10\uff11\uff17\uff13",
                     id="fullwidth-digits"),
        pytest.param("\uff0b12025550173", id="fullwidth-plus"),
        pytest.param("+1\t202\t555\t0173", id="tabs"),
        pytest.param("+1 202 555 0173\n", id="trailing-newline"),
        pytest.param("++12025550173", id="double-plus"),
        pytest.param("+1" + "2" * 98, id="100-chars"),
        pytest.param("+1" + " " * 31 + "2025550173", id="33-chars-padded"),
        pytest.param("+10000000000", id="not-in-numbering-plan"),
        pytest.param("+999123456789", id="unassigned-country-code"),
    ],
)
def test_invalid_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(AddressError) as info:
        normalize_e164(raw)
    assert info.value.code == "invalid_phone_number"
    assert info.value.message
    assert str(info.value) == info.value.message
    assert not is_phone_number(raw)


def test_address_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="start with"):
        normalize_e164("12025550173")


@pytest.mark.parametrize("value", ["Acme", "12345", "", "+1 202 555 0173", "+1202"])
def test_is_phone_number_rejects_non_e164(value: str) -> None:
    assert not is_phone_number(value)


# --- normalize_sender --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "Acme",
        "ACME-Bank",
        "A",
        "Acme Bank",
        "acme.io",
        "Tom&Jerry",
        "my_shop",
        "Acme2024",
        "2FA",
        "ABCDEFGHIJK",  # 11 characters, the maximum
        "123",  # shortest short code
        "12345",
        "12345678",  # longest short code
    ],
)
def test_valid_sender_ids_are_returned_unchanged(raw: str) -> None:
    assert normalize_sender(raw) == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+12025550173", "+12025550173"), ("+44 7911 123456", "+447911123456")],
)
def test_phone_number_senders_are_normalised(raw: str, expected: str) -> None:
    assert normalize_sender(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="space"),
        pytest.param("ABCDEFGHIJKL", id="12-chars"),
        pytest.param(" Acme", id="leading-space"),
        pytest.param("Acme ", id="trailing-space"),
        pytest.param("Acme!", id="punctuation"),
        pytest.param("Ac\u00e9me", id="non-ascii-letter"),
        pytest.param("Acme\tBank", id="tab"),
        pytest.param("...", id="no-letter"),
        pytest.param("12", id="short-code-too-short"),
        pytest.param("123456789", id="9-digits"),
        pytest.param("12025550173", id="number-without-plus"),
        pytest.param("\u0661\u0662\u0663\u0664\u0665", id="arabic-indic-short-code"),
        pytest.param("+1202", id="invalid-phone-number"),
        pytest.param("+Acme", id="plus-then-letters"),
    ],
)
def test_invalid_sender_ids_are_rejected(raw: str) -> None:
    with pytest.raises(AddressError) as info:
        normalize_sender(raw)
    assert info.value.code == "invalid_sender_id"
    assert info.value.message


# --- properties --------------------------------------------------------------------------

phone_like = st.text(alphabet="+0123456789 ().-", min_size=1, max_size=24).map(
    lambda s: "+" + s.lstrip("+")
)


def _example_number(region: str, fmt: int) -> str:
    number = phonenumbers.example_number(region)
    return "" if number is None else phonenumbers.format_number(number, fmt)


# Real example numbers of every supported region, in E.164 and in international layout.
example_numbers = st.builds(
    _example_number,
    st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
    st.sampled_from(
        [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
    ),
)


@given(st.text(max_size=40) | phone_like | example_numbers)
@example("+1 (202) 555-0173")
def test_normalize_e164_only_raises_address_error_and_is_idempotent(raw: str) -> None:
    try:
        normalized = normalize_e164(raw)
    except AddressError as exc:
        error_code = exc.code
    else:
        assert normalize_e164(normalized) == normalized
        assert is_phone_number(normalized)
        return
    assert error_code == "invalid_phone_number"


@given(st.text(max_size=40) | phone_like | example_numbers)
def test_normalize_sender_only_raises_address_error_and_is_idempotent(raw: str) -> None:
    try:
        normalized = normalize_sender(raw)
    except AddressError as exc:
        error_code = exc.code
    else:
        assert normalize_sender(normalized) == normalized
        return
    assert error_code == "invalid_sender_id"
