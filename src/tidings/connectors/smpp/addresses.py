"""Our addresses on the SMPP wire: type of number (TON) and numbering plan (NPI).

Outbound: "+<digits>" is international (TON 1, NPI 1 ISDN) without the plus; an
alphanumeric sender is TON 5 (NPI 0); other digits (short codes) go as they are
with TON 0 (unknown), NPI 1. Inbound: TON 1, or TON 0 with at least
``MIN_INTERNATIONAL_DIGITS`` digits, becomes "+<digits>"; anything else is kept
as the SMSC wrote it.
"""

from __future__ import annotations

TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1
MIN_INTERNATIONAL_DIGITS = 8


def to_smpp(address: str) -> tuple[int, int, str]:
    """(ton, npi, address) for a destination or sender of ours."""
    if address.startswith("+") and address[1:].isdigit():
        return TON_INTERNATIONAL, NPI_ISDN, address[1:]
    if address.isdigit():
        return TON_UNKNOWN, NPI_ISDN, address
    return TON_ALPHANUMERIC, NPI_UNKNOWN, address


def from_smpp(ton: int, address: str) -> str:
    """An address from the SMSC as we write addresses (E.164 with "+" where it is one)."""
    digits = address.removeprefix("+")
    if digits.isdigit() and (ton == TON_INTERNATIONAL or (
            ton == TON_UNKNOWN and len(digits) >= MIN_INTERNATIONAL_DIGITS)):
        return f"+{digits}"
    return address
