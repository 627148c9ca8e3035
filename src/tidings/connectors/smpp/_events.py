"""What ``session.Session`` tells the application; import them from ``session``.

The session is CLOSED after ``Unbound``, ``ConnectionClosed`` and ``CloseRequested``,
the last event it ever emits. Each request we send ends in exactly one of
``ResponseReceived``, ``RequestTimedOut`` or ``RequestAbandoned``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.connectors.smpp._states import BindMode, BindRequest
from tidings.connectors.smpp.pdu import Pdu


@dataclass(frozen=True, slots=True)
class BindRequested:
    """Server: a peer asks to bind; answer with ``accept_bind`` or ``reject_bind``."""

    pdu: BindRequest


@dataclass(frozen=True, slots=True)
class Bound:
    """The bind succeeded (client: the SMSC said so; server: returned by ``accept_bind``)."""

    mode: BindMode
    peer_system_id: str


@dataclass(frozen=True, slots=True)
class BindFailed:
    """Client: the SMSC refused our bind (state OPEN again: bind may be retried), or
    ``command_status`` is None: no answer came before the time-out or the connection ended.
    """

    command_status: int | None


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The peer sent submit_sm, data_sm, deliver_sm or query_sm: answer with ``respond``."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The peer answered a request of ours: its resp, or a generic_nack; any status."""

    request: Pdu
    response: Pdu


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """A request of ours went unanswered for ``response_timeout``; it left the window.

    The peer may still have acted on it; a later answer comes as ``UnexpectedResponse``.
    """

    request: Pdu


@dataclass(frozen=True, slots=True)
class RequestAbandoned:
    """The session closed while a request of ours awaited its answer; its fate is unknown."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class UnexpectedResponse:
    """A response matching no request in flight: typically a late one after
    ``RequestTimedOut`` (match it by ``sequence_number``, which repeats only after 2**31
    requests). Informational; the session carries on.
    """

    response: Pdu


@dataclass(frozen=True, slots=True)
class Unbound:
    """The session ended in order: the peer's unbind was answered, or ours was."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``)."""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent something unreadable or not allowed now; the session answered it
    (generic_nack or an error resp) where an answer was due. Informational unless a
    ``CloseRequested`` follows.
    """

    message: str


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The session gave up on the connection: the byte stream broke or a timer ran out.
    Write out ``data_to_send()`` and close the socket.
    """

    reason: str


Event = (
    BindRequested
    | Bound
    | BindFailed
    | RequestReceived
    | ResponseReceived
    | RequestTimedOut
    | RequestAbandoned
    | UnexpectedResponse
    | Unbound
    | ConnectionClosed
    | ProtocolError
    | CloseRequested
)
