"""Keys that match a delivery receipt to a submit whose answer a crash cut off.

A submit_sm whose ``submit_sm_resp`` never reached the ledger has no SMSC message
id, so ``query_sm`` cannot ask about it and its receipt names an id nobody knows.
What the receipt does name is the handset (its ``source_addr``: the submit's
destination), our sender (its ``destination_addr``) and, in SMPP 3.4 Appendix B's
``text:``, the first 20 characters of the message. The ledger keeps only HMAC-SHA256
digests of these, under a key it does not hold (the runtime derives it from the key
store), so a copy of the ledger file gives away no number and no text.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from tidings.connectors.smpp.pdu import DataSm, DeliverSm
from tidings.connectors.smpp.receipts import parse_receipt_text, receipt_text

TEXT_PREFIX = 20  # Appendix B: "the first 20 characters of the short message"
MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """Digests of one message: with its text prefix, and of its addresses alone."""

    full: bytes
    addresses: bytes


class ReceiptMatcher:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a receipt match key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def for_submit(self, destination: str, source: str, body: str) -> MatchKeys:
        """The keys of a submit, from the addresses as they went on the wire."""
        return self._keys(destination, source, body)

    def for_receipt(self, pdu: DeliverSm | DataSm) -> tuple[MatchKeys, bool]:
        """The keys a receipt matches on, and whether it quoted any text at all (one
        without text can only be matched on its addresses)."""
        parsed = parse_receipt_text(receipt_text(pdu))
        text = parsed.text if parsed is not None else ""
        return self._keys(pdu.source_addr, pdu.destination_addr, text), bool(text.strip())

    def _keys(self, destination: str, source: str, text: str) -> MatchKeys:
        addresses = f"{_address(destination)}\x00{_address(source)}"
        return MatchKeys(full=self._mac(f"{addresses}\x00{_text(text)}"),
                         addresses=self._mac(addresses))

    def _mac(self, value: str) -> bytes:
        return hmac.digest(self._key, value.encode(), "sha256")  # one call into OpenSSL


def _address(value: str) -> str:
    return value.strip().removeprefix("+")


def _text(value: str) -> str:
    """The text prefix as both sides can show it: receipts quote it in ASCII whatever the
    message's coding, so anything else counts as "?" on both sides."""
    return _NOT_PRINTABLE_ASCII.sub("?", value[:TEXT_PREFIX]).strip()


_NOT_PRINTABLE_ASCII = re.compile("[^ -~]")
