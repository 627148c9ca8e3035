"""Phone numbers, SMS sender ids and email addresses: validation and normalisation.

Everything that reaches a carrier goes through here, so the rules are strict and the
errors carry a stable machine code (``AddressError.code``) for API responses.
"""

from __future__ import annotations

import re

import phonenumbers

INVALID_PHONE_NUMBER = "invalid_phone_number"
INVALID_SENDER_ID = "invalid_sender_id"
INVALID_EMAIL_ADDRESS = "invalid_email_address"
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit

# Generous for formatted input ("+55 (11) 98765-4321" is 19) yet keeps the parser away
# from arbitrarily long strings.
MAX_PHONE_INPUT_LENGTH = 32

# [0-9] rather than \d: \d (and str.isdigit) also match Arabic-Indic, fullwidth and other
# non-ASCII digits, which phonenumbers would silently fold into ASCII.
_PHONE_INPUT = re.compile(r"\+[0-9 ().\-]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9._&-](?:[A-Za-z0-9 ._&-]{0,9}[A-Za-z0-9._&-])?")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
# A plain addr-spec: dot-atom local part, dotted domain of LDH labels. No quoted local
# parts, comments, IP literals or display names: nothing a header could be smuggled in.
_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})")


class AddressError(ValueError):
    """A phone number or sender id was rejected.

    ``code`` is stable and machine-readable (``invalid_phone_number``,
    ``invalid_sender_id``); ``message`` explains the problem to a person.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def normalize_e164(raw: str) -> str:
    """Validate a phone number in international form and return it as E.164.

    ``raw`` must start with '+' and the country code; after that only ASCII digits,
    spaces, '-', '.', '(' and ')' are allowed. The number must be valid according to
    the phonenumbers numbering-plan metadata. ``"+1 (202) 555-0173"`` gives
    ``"+12025550173"``. Raises ``AddressError`` with code ``invalid_phone_number``.
    """
    _check_phone_syntax(raw)
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise _phone_error("phone number could not be parsed") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise _phone_error("phone number is not a valid number in any known numbering plan")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Validate a plain email address (``ann@example.com``); the domain in lower case.

    Raises ``AddressError`` with code ``invalid_email_address``.
    """
    match = _EMAIL.fullmatch(raw) if len(raw) <= MAX_EMAIL_LENGTH else None
    if match is None or len(match.group("local")) > 64:
        raise AddressError("email address is not a plain address like ann@example.com",
                           code=INVALID_EMAIL_ADDRESS)
    return f"{match.group('local')}@{match.group('domain').lower()}"


def is_phone_number(value: str) -> bool:
    """Return True if ``value`` is a valid phone number already in canonical E.164 form."""
    # The cheap shape check first: alphanumeric sender ids and short codes never reach
    # the phonenumbers parser.
    if _E164.fullmatch(value) is None:
        return False
    try:
        return normalize_e164(value) == value
    except AddressError:
        return False


def normalize_sender(raw: str) -> str:
    """Validate an SMS sender id and return its canonical form.

    Accepted forms: a phone number starting with '+' (returned as E.164), a short code
    of 3-8 ASCII digits, or an alphanumeric id of 1-11 characters from
    ``[A-Za-z0-9 ._&-]`` with at least one letter and no leading or trailing space.
    Raises ``AddressError`` with code ``invalid_sender_id``.
    """
    if raw.startswith("+"):
        try:
            return normalize_e164(raw)
        except AddressError as exc:
            raise _sender_error(f"sender phone number is invalid: {exc.message}") from exc
    if _SHORT_CODE.fullmatch(raw):
        return raw
    if _ALPHANUMERIC_SENDER.fullmatch(raw) and _ASCII_LETTER.search(raw):
        return raw
    raise _sender_error(
        "sender id must be a phone number starting with '+', a short code of 3-8 digits, "
        "or 1-11 characters from A-Z a-z 0-9 space . _ & - including a letter, "
        "with no leading or trailing space"
    )


def _check_phone_syntax(raw: str) -> None:
    # Our own character rules run before phonenumbers, which is lenient by design: it
    # accepts letters as vanity digits, "ext 5" suffixes and non-ASCII digits.
    if len(raw) > MAX_PHONE_INPUT_LENGTH:
        raise _phone_error(f"phone number is longer than {MAX_PHONE_INPUT_LENGTH} characters")
    if not raw.startswith("+"):
        raise _phone_error("phone number must start with '+' and the country code")
    if _PHONE_INPUT.fullmatch(raw) is None:
        raise _phone_error(
            "phone number may only contain ASCII digits, spaces, '-', '.', '(' and ')' "
            "after the leading '+'"
        )


def _phone_error(message: str) -> AddressError:
    return AddressError(message, code=INVALID_PHONE_NUMBER)


def _sender_error(message: str) -> AddressError:
    return AddressError(message, code=INVALID_SENDER_ID)
