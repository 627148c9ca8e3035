"""The states of ``session.Session`` and which requests each side may send in each.

SMPP 3.4 §2.3 and the PDU table of §2.4 (table 2-1): bound as transmitter, the ESME
sends submit_sm, data_sm and query_sm; bound as receiver, the SMSC sends deliver_sm and
data_sm; a transceiver bind allows both. enquire_link, unbind and generic_nack are the
session's own business.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from tidings.connectors.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    DataSm,
    DeliverSm,
    EnquireLink,
    Pdu,
    QuerySm,
    SubmitSm,
    Unbind,
)

Role = Literal["client", "server"]
BindMode = Literal["transmitter", "receiver", "transceiver"]
BindRequest = BindTransmitter | BindReceiver | BindTransceiver


class SessionState(Enum):
    """Where a session is; ``BOUND_TX``/``RX``/``TRX`` name the ESME's bind in both roles."""

    OPEN = "open"  # connected, not bound
    BINDING = "binding"  # a bind is in flight, or (server) awaits accept_bind/reject_bind
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # we sent unbind and await unbind_resp
    CLOSED = "closed"


PRE_BIND_STATES = frozenset({SessionState.OPEN, SessionState.BINDING})
BOUND_STATES = frozenset({SessionState.BOUND_TX, SessionState.BOUND_RX, SessionState.BOUND_TRX})
BOUND_BY_MODE: dict[BindMode, SessionState] = {
    "transmitter": SessionState.BOUND_TX,
    "receiver": SessionState.BOUND_RX,
    "transceiver": SessionState.BOUND_TRX,
}
BIND_REQUEST_BY_MODE: dict[BindMode, type[BindRequest]] = {
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
    "transceiver": BindTransceiver,
}
BIND_REQUESTS = (BindTransmitter, BindReceiver, BindTransceiver)
BIND_RESPONSES = (BindTransmitterResp, BindReceiverResp, BindTransceiverResp)
MODE_BY_BIND_ID: dict[int, BindMode] = {
    cls.command_id: mode for mode, cls in BIND_REQUEST_BY_MODE.items()
}

REQUEST_CLASS_BY_ID: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (*BIND_REQUESTS, SubmitSm, DeliverSm, DataSm, QuerySm, EnquireLink, Unbind)
}

_RESPONSE_BIT = 0x80000000  # SMPP: a response's command_id is its request's with bit 31 set
_ESME_REQUESTS = frozenset({CommandId.SUBMIT_SM, CommandId.DATA_SM, CommandId.QUERY_SM})
_SMSC_REQUESTS = frozenset({CommandId.DELIVER_SM, CommandId.DATA_SM})
_NOTHING: frozenset[int] = frozenset()
_ESME_MAY_SEND = {SessionState.BOUND_TX: _ESME_REQUESTS, SessionState.BOUND_TRX: _ESME_REQUESTS}
_SMSC_MAY_SEND = {SessionState.BOUND_RX: _SMSC_REQUESTS, SessionState.BOUND_TRX: _SMSC_REQUESTS}

APPLICATION_REQUESTS = _ESME_REQUESTS | _SMSC_REQUESTS  # what the application sends and answers
WINDOWED_REQUESTS = frozenset({CommandId.SUBMIT_SM, CommandId.DATA_SM, CommandId.DELIVER_SM})


def may_send(role: Role, state: SessionState) -> frozenset[int]:
    """The application requests ``role`` may send in ``state``."""
    table = _ESME_MAY_SEND if role == "client" else _SMSC_MAY_SEND
    return table.get(state, _NOTHING)


def may_receive(role: Role, state: SessionState) -> frozenset[int]:
    """The application requests ``role`` accepts from its peer in ``state``."""
    return may_send("server" if role == "client" else "client", state)


def answers(response: Pdu, request: Pdu) -> bool:
    """Whether ``response`` is of the kind that answers ``request`` (generic_nack always is)."""
    command_id = response.command_id
    return command_id == CommandId.GENERIC_NACK or command_id == request.command_id | _RESPONSE_BIT


def command_name(command_id: CommandId) -> str:
    """``submit_sm`` and the like, for messages."""
    return command_id.name.lower()
