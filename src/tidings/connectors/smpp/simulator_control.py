"""What steers the SMSC simulator, without I/O.

Its knobs (``SimulatorBehaviour``), the outcome each submit gets (``OutcomePicker``:
the magic numbers tabled in ``simulator``'s docstring, then the seeded trouble), the
record of an accepted submit (``SubmitRecord``), and the receipt and mobile-originated
deliver_sm it sends. Import these from ``simulator``. The HTTP API that steers a running
simulator is ``simulator_http``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.coding import (
    ConcatInfo,
    choose_coding,
    decode_text,
    message_octets,
    parse_udh,
    sar_concat,
    split_for_submit,
)
from tidings.connectors.smpp.pdu import (
    CommandStatus,
    DeliverSm,
    MessageState,
    OptionalParams,
    PduError,
    SubmitSm,
    encode,
)
from tidings.connectors.smpp.receipts import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ReceiptText,
    format_receipt_text,
)

MAGIC_SUFFIX_DIGITS = 7
_GSM_NETWORK_TYPE = 3
_RECEIPT_EVERY, _RECEIPT_ON_FAILURE = 1, 2  # registered_delivery, bits 0-1


@dataclass(frozen=True)
class SimulatorBehaviour:
    """What the simulator requires of binds and how it misbehaves; times in seconds.

    ``system_id``/``password``: what a bind must present (None: anything goes).
    ``receipt_delay``: from the submit_sm_resp to its receipt. ``receipt_retry_delay``:
    how long a deliver_sm (receipt or MO) may go unanswered, or waits after an error
    answer, before it is sent again. ``window``: our deliver_sm in flight per bind. The
    trouble knobs are described in ``simulator``'s docstring. ``ValueError`` for values
    out of range.
    """

    system_id: str | None = None
    password: str | None = field(default=None, repr=False)
    receipt_delay: float = 0.2
    receipt_retry_delay: float = 5.0
    throttle_ratio: float = 0.0
    reject_ratio: float = 0.0
    disconnect_after: int = 0
    window_delay: float = 0.0
    swallow_answers: int = 0
    seed: int = 1
    window: int = 100

    def __post_init__(self) -> None:
        problems = list(_behaviour_problems(self))
        if problems:
            raise ValueError("; ".join(problems))


def _behaviour_problems(behaviour: SimulatorBehaviour) -> Iterable[str]:
    throttle, reject = behaviour.throttle_ratio, behaviour.reject_ratio
    if not (0 <= throttle <= 1 and 0 <= reject <= 1 and throttle + reject <= 1):
        yield "throttle_ratio and reject_ratio must lie in 0..1 and add up to at most 1"
    if not (behaviour.receipt_delay >= 0 and behaviour.window_delay >= 0):
        yield "receipt_delay and window_delay must be 0 or more"
    if not behaviour.receipt_retry_delay > 0:
        yield "receipt_retry_delay must be positive"
    if behaviour.disconnect_after < 0 or behaviour.swallow_answers < 0 or behaviour.window < 1:
        yield "disconnect_after and swallow_answers must be 0 or more, window at least 1"
    # Longer ones could never arrive: the bind PDU limits them (16 and 9 octets with NUL).
    for name, value, longest in (("system_id", behaviour.system_id, 15),
                                 ("password", behaviour.password, 8)):
        if value is not None and not (value.isascii() and len(value) <= longest):
            yield f"{name} must be ASCII of at most {longest} characters"


# --- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What becomes of a submit_sm: its answer and, once accepted, its receipt."""

    submit_status: int = CommandStatus.ESME_ROK
    stat: str = "DELIVRD"
    message_state: MessageState = MessageState.DELIVERED
    network_error: int = 0  # GSM MAP error code; the receipt's err
    sends_receipt: bool = True
    throttles_first: bool = False

    @property
    def failed(self) -> bool:
        return self.stat != "DELIVRD"


DELIVERED = Outcome()
THROTTLED = Outcome(CommandStatus.ESME_RTHROTTLED, sends_receipt=False)
REJECTED = Outcome(CommandStatus.ESME_RINVDSTADR, sends_receipt=False)
# The table in simulator's docstring, by the destination's last MAGIC_SUFFIX_DIGITS.
MAGIC_OUTCOMES: dict[str, Outcome] = {
    "5550100": Outcome(stat="UNDELIV", message_state=MessageState.UNDELIVERABLE,
                       network_error=1),  # unknown subscriber
    "5550101": Outcome(stat="REJECTD", message_state=MessageState.REJECTED,
                       network_error=13),  # call barred
    "5550102": Outcome(stat="EXPIRED", message_state=MessageState.EXPIRED,
                       network_error=27),  # absent subscriber
    "5550103": REJECTED,
    "5550104": Outcome(throttles_first=True),
    "5550105": Outcome(sends_receipt=False),
}


class OutcomePicker:
    """Picks each submit's outcome: a magic number's, else the seeded trouble's."""

    def __init__(self, behaviour: SimulatorBehaviour) -> None:
        self._throttle_below = behaviour.throttle_ratio
        self._reject_below = behaviour.throttle_ratio + behaviour.reject_ratio
        self._random = random.Random(behaviour.seed)
        self._throttled_once: set[str] = set()

    def pick(self, destination: str) -> Outcome:
        magic = MAGIC_OUTCOMES.get(destination[-MAGIC_SUFFIX_DIGITS:])
        if magic is None:
            draw = self._random.random()
            if draw < self._throttle_below:
                return THROTTLED
            return REJECTED if draw < self._reject_below else DELIVERED
        if magic.throttles_first and destination not in self._throttled_once:
            self._throttled_once.add(destination)
            return THROTTLED
        return magic


def wants_receipt(registered_delivery: int, outcome: Outcome) -> bool:
    """Whether the ESME asked for this outcome's receipt (and the outcome has one)."""
    asked = registered_delivery & 0x03
    return outcome.sends_receipt and (
        asked == _RECEIPT_EVERY or (asked == _RECEIPT_ON_FAILURE and outcome.failed))


# --- what the simulator keeps and sends --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitRecord:
    """An accepted submit_sm: the id we gave it, who sent it when (Unix time), the PDU."""

    message_id: str
    system_id: str
    submitted_at: float
    pdu: SubmitSm

    @property
    def part(self) -> ConcatInfo | None:
        """Which part of a long message this is (UDH or SAR); None for a lone one."""
        return self._body()[0]

    @property
    def text(self) -> str:
        """The text, without its UDH."""
        return decode_text(self.pdu.data_coding, self._body()[1])

    def to_json(self) -> dict[str, object]:
        pdu, part = self.pdu, self.part
        return {
            "message_id": self.message_id, "system_id": self.system_id,
            "submitted_at": datetime.fromtimestamp(self.submitted_at, UTC).isoformat(),
            "source": pdu.source_addr, "destination": pdu.destination_addr,
            "data_coding": pdu.data_coding, "esm_class": pdu.esm_class,
            "registered_delivery": pdu.registered_delivery, "text": self.text,
            "part": None if part is None else {
                "reference": part.reference, "total": part.total, "seqnum": part.seqnum},
        }

    def _body(self) -> tuple[ConcatInfo | None, bytes]:
        pdu = self.pdu
        concat, octets = parse_udh(message_octets(pdu.short_message, pdu.optional),
                                   pdu.esm_class)
        return concat or sar_concat(pdu.optional), octets


def receipt_deliver_sm(record: SubmitRecord, outcome: Outcome, done_at: float) -> DeliverSm:
    """The delivery receipt of ``record``: Appendix B text and TLVs, addresses swapped."""
    submit, error = record.pdu, outcome.network_error
    text = ReceiptText(
        message_id=record.message_id, submitted=1, delivered=0 if outcome.failed else 1,
        submit_date=_receipt_date(record.submitted_at), done_date=_receipt_date(done_at),
        stat=outcome.stat, err=f"{error:03d}", text=record.text)
    network_error = bytes((_GSM_NETWORK_TYPE, *error.to_bytes(2, "big"))) if error else None
    return DeliverSm(
        sequence_number=0, source_addr_ton=submit.dest_addr_ton,
        source_addr_npi=submit.dest_addr_npi, source_addr=submit.destination_addr,
        dest_addr_ton=submit.source_addr_ton, dest_addr_npi=submit.source_addr_npi,
        destination_addr=submit.source_addr, esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        # ASCII: receipt texts are read as such, whatever the message's own coding.
        short_message=format_receipt_text(text).encode("ascii", "replace"),
        optional=OptionalParams(receipted_message_id=record.message_id,
                                message_state=outcome.message_state,
                                network_error_code=network_error))


def _receipt_date(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).strftime("%y%m%d%H%M")


def mo_deliver_sms(sender: str, to: str, body: str, *, reference: int) -> list[DeliverSm]:
    """A mobile-originated message as deliver_sm parts: GSM-7 (data_coding 0) when the
    body allows, else UCS-2 (8); a long body in UDH-concatenated parts (``reference``).

    ``ValueError`` for an empty or unencodable address, or a body over 255 parts.
    """
    if not sender or not to:
        raise ValueError("'from' and 'to' must not be empty")
    source_ton, source_npi, source = to_smpp(sender)
    dest_ton, dest_npi, destination = to_smpp(to)
    parts = [DeliverSm(
        sequence_number=0, source_addr_ton=source_ton, source_addr_npi=source_npi,
        source_addr=source, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi,
        destination_addr=destination, esm_class=part.esm_class, data_coding=part.data_coding,
        short_message=part.short_message)
        for part in split_for_submit(body, coding=choose_coding(body), long_mode="udh",
                                     reference=reference)]
    try:
        encode(parts[0])  # the parts differ only in short_message, which always fits
    except PduError as error:
        raise ValueError(str(error)) from None
    return parts
