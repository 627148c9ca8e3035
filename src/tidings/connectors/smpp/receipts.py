"""SMSC delivery receipts: the SMPP 3.4 Appendix B text, and deliver_sm/data_sm PDUs that
carry one, mapped to our final statuses ("delivered", "undelivered", "failed", "expired",
"rejected"; ``None`` means not final yet).

Parsing is tolerant, because every SMSC bends Appendix B its own way, and never raises.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from tidings.connectors.smpp.coding import DATA_CODING_UCS2, decode_text, message_octets
from tidings.connectors.smpp.pdu import DataSm, DeliverSm, MessageState, OptionalParams

ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_CLASS_INTERMEDIATE_NOTIFICATION = 0x20
_TEXT_LIMIT = 20

STAT_TO_STATUS: dict[str, str | None] = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "DELETED": "undelivered",
    "UNDELIV": "undelivered",
    "ACCEPTD": None,
    "UNKNOWN": "failed",
    "REJECTD": "rejected",
    "ENROUTE": None,
    # Spelled out in full by some SMSCs.
    "DELIVERED": "delivered",
    "UNDELIVERABLE": "undelivered",
    "ACCEPTED": None,
    "REJECTED": "rejected",
    "FAILED": "failed",
}

MESSAGE_STATE_TO_STATUS: dict[int, str | None] = {
    MessageState.ENROUTE: None,
    MessageState.DELIVERED: "delivered",
    MessageState.EXPIRED: "expired",
    MessageState.DELETED: "undelivered",
    MessageState.UNDELIVERABLE: "undelivered",
    MessageState.ACCEPTED: None,
    MessageState.UNKNOWN: "failed",
    MessageState.REJECTED: "rejected",
}


@dataclass(frozen=True, slots=True)
class ReceiptText:
    """The fields of an Appendix B receipt text; ``stat`` is upper-cased."""

    message_id: str
    submitted: int
    delivered: int
    submit_date: str
    done_date: str
    stat: str
    err: str
    text: str


# A key is only a key at a word start ("msgid:" holds no "id:"); "Text:" ends the keys,
# since the quoted message may contain anything.
_KEY = re.compile(
    r"(?<![a-z0-9_])(id|sub|dlvrd|submit[\s_]*date|done[\s_]*date|stat|err|text)\s*:",
    re.IGNORECASE,
)
_KEY_NOISE = re.compile(r"[\s_]")  # "Submit_Date" and "submit  date" are "submitdate"


def parse_receipt_text(text: str) -> ReceiptText | None:
    """The receipt in ``text``, or ``None`` when it has no id or no stat. Never raises.

    Keys are case-insensitive and may come in any order, dates are kept as written, a
    non-numeric sub/dlvrd counts as 0, and a missing Text is "".
    """
    fields = _fields(text)
    message_id, stat = fields.get("id", ""), fields.get("stat", "").upper()
    if not message_id or not stat:
        return None
    return ReceiptText(
        message_id=message_id,
        submitted=_count(fields.get("sub", "")),
        delivered=_count(fields.get("dlvrd", "")),
        submit_date=fields.get("submitdate", ""),
        done_date=fields.get("donedate", ""),
        stat=stat,
        err=fields.get("err", ""),
        text=fields.get("text", ""),
    )


def _fields(text: str) -> dict[str, str]:
    """Key (lower case, no spaces) to value: the first word after it, or all of Text."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = _normal_key(match.group(1))
        if key == "text":
            fields.setdefault(key, text[match.end():].strip())
            break
        stop = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        words = text[match.end():stop].split()
        fields.setdefault(key, words[0] if words else "")
    return fields


@functools.lru_cache(maxsize=256)  # a handful of spellings in practice, each seen per receipt
def _normal_key(key: str) -> str:
    return _KEY_NOISE.sub("", key).lower()


def _count(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() else 0


def format_receipt_text(receipt: ReceiptText) -> str:
    """The Appendix B text of ``receipt``: counts padded to 3 digits, Text cut to 20."""
    return (
        f"id:{receipt.message_id} sub:{receipt.submitted:03d} dlvrd:{receipt.delivered:03d} "
        f"submit date:{receipt.submit_date} done date:{receipt.done_date} "
        f"stat:{receipt.stat} err:{receipt.err} Text:{receipt.text[:_TEXT_LIMIT]}"
    )


def is_delivery_receipt(esm_class: int) -> bool:
    """Whether esm_class marks an SMSC delivery receipt or an intermediate notification."""
    return esm_class & ESM_CLASS_TYPE_MASK in (
        ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    )


def receipt_from_deliver_sm(
    pdu: DeliverSm | DataSm,
) -> tuple[str, str | None, str | None] | None:
    """``(carrier_message_id, final status or None, error code or None)`` of a receipt.

    ``None`` when ``pdu`` is not a receipt (so it is a mobile-originated message) or when
    it is one without a readable message id; tell the two apart with
    ``is_delivery_receipt``. The TLVs receipted_message_id, message_state and
    network_error_code win over the text form. Errors read "<network type>:0x<code>"
    (e.g. "3:0x0001" for GSM) from network_error_code, else the text's err as written;
    an all-zero error is no error. An intermediate notification is never final.
    """
    if not is_delivery_receipt(pdu.esm_class):
        return None
    optional = pdu.optional
    text = None
    if optional.receipted_message_id is None or optional.message_state is None \
            or optional.network_error_code is None:
        text = parse_receipt_text(receipt_text(pdu))
    message_id = optional.receipted_message_id or (text.message_id if text else "")
    if not message_id:
        return None
    if pdu.esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_INTERMEDIATE_NOTIFICATION:
        status = None
    elif optional.message_state is not None:
        status = MESSAGE_STATE_TO_STATUS.get(optional.message_state)
    else:
        status = STAT_TO_STATUS.get(text.stat) if text else None
    return message_id, status, _error_code(optional, text)


def receipt_text(pdu: DeliverSm | DataSm) -> str:
    """The short message (or message_payload) of a receipt as text."""
    short_message = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    octets = message_octets(short_message, pdu.optional)
    if pdu.data_coding == DATA_CODING_UCS2:
        return decode_text(pdu.data_coding, octets)
    # Not GSM-7 even at data_coding 0: receipt texts are ASCII, and GSM-7 would turn the
    # "_" of a message id into "§".
    return octets.decode("latin-1")


def _error_code(optional: OptionalParams, text: ReceiptText | None) -> str | None:
    network_error = optional.network_error_code
    if network_error is not None and len(network_error) == 3:
        code = int.from_bytes(network_error[1:], "big")
        return f"{network_error[0]}:{code:#06x}" if code else None
    if text is None or not text.err.strip("0"):
        return None
    return text.err
