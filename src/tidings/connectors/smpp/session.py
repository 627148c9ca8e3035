"""The SMPP 3.4 session: one per TCP connection, either role, without I/O (in the style of h11).

Hand it what the socket read (``receive_data``) and the passing of time (``tick``), write
out what it wants written (``data_to_send``) and act on the events it returns. It answers
by itself: enquire_link, unbind, undecodable PDUs (generic_nack) and requests the current
state does not allow (the matching response with ``ESME_RINVBNDSTS``). It keeps the
books on the requests we send: sequence numbers, the window, the send rate, time-outs.

States and the usual way through them::

    OPEN ── bind() / a bind arrives ──► BINDING ── bind_resp OK / accept_bind() ──► BOUND_*
      ▲                                    │                                          │
      └──── bind_resp error / reject_bind()┘                                  unbind()│
                                                 CLOSED ◄── unbind_resp ── UNBINDING ◄┘

Every state reaches CLOSED when the peer unbinds or closes, the byte stream breaks, or a
timer gives up. The event that brought it there (``Unbound``, ``ConnectionClosed`` or
``CloseRequested``) is the last one the session emits; write out ``data_to_send()`` and
close the socket. Times are monotonic seconds passed in as ``now``, never going backwards.
"""

from __future__ import annotations

import math
from dataclasses import replace

from tidings.connectors.smpp._events import (
    BindFailed,
    BindRequested,
    Bound,
    CloseRequested,
    ConnectionClosed,
    Event,
    ProtocolError,
    RequestAbandoned,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Unbound,
    UnexpectedResponse,
)
from tidings.connectors.smpp._limits import SessionConfig, SessionError, Throttled, WindowFull
from tidings.connectors.smpp._states import (
    APPLICATION_REQUESTS,
    BIND_REQUEST_BY_MODE,
    BIND_REQUESTS,
    BIND_RESPONSES,
    BOUND_BY_MODE,
    BOUND_STATES,
    MODE_BY_BIND_ID,
    PRE_BIND_STATES,
    REQUEST_CLASS_BY_ID,
    WINDOWED_REQUESTS,
    BindMode,
    BindRequest,
    Role,
    SessionState,
    answers,
    command_name,
    may_receive,
    may_send,
)
from tidings.connectors.smpp._window import InFlight, Pending, SendPacer, SequenceNumbers
from tidings.connectors.smpp.pdu import (
    CommandId,
    CommandStatus,
    EnquireLink,
    FrameSplitter,
    GenericNack,
    Pdu,
    PduError,
    Unbind,
    decode,
    encode,
    is_response,
    response_to,
)

__all__ = [  # the events, states and roles live in private modules (as in h11)
    "BindFailed", "BindMode", "BindRequested", "Bound", "CloseRequested", "ConnectionClosed",
    "Event", "ProtocolError", "RequestAbandoned", "RequestReceived", "RequestTimedOut",
    "ResponseReceived", "Role", "Session", "SessionConfig", "SessionError", "SessionState",
    "Throttled", "Unbound", "UnexpectedResponse", "WindowFull",
]  # fmt: skip


class Session:
    """One SMPP session over one connection, as the ESME (``"client"``) or SMSC (``"server"``).

    ``now``, when given, is when the connection opened: a server then closes a peer that
    sends no bind within ``bind_timeout`` (SMPP's session_init_timer).
    """

    def __init__(
        self, role: Role, config: SessionConfig | None = None, *, now: float | None = None
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self._role: Role = role
        self._config = config or SessionConfig()
        self._splitter = FrameSplitter()
        self._to_send = bytearray()
        self._sequence_numbers = SequenceNumbers()
        self._in_flight = InFlight()
        self._pacer = SendPacer(self._config.tps, self._config.tps_burst)
        self._paused_until = -math.inf
        self._last_received_at = 0.0 if now is None else now
        self._keepalive_in_flight = False
        self._bind_to_answer: BindRequest | None = None
        self._limits_bind_wait = role == "server" and now is not None
        self._state_deadline: float | None = None
        self._enter(SessionState.OPEN)
        if now is not None:
            self._start_bind_wait(now)

    # --- what the application reads ----------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_bound(self) -> bool:
        return self._state in BOUND_STATES

    @property
    def outstanding(self) -> int:
        """Our submit_sm/data_sm/deliver_sm awaiting a response: what fills the window."""
        return self._in_flight.windowed

    def next_send_at(self, now: float) -> float:
        """When the next submit_sm/data_sm/deliver_sm may go: ``now`` if it may go now.

        ``math.inf`` while the window is full (a response or time-out frees it) or the
        session is in no state to send one.
        """
        if not self._sends_windowed or self._in_flight.windowed >= self._config.window:
            return math.inf
        return max(self._paused_until, self._pacer.next_at(now))

    def may_send(self, command_id: int) -> bool:
        """Whether this role in this state may send the command at all (window aside)."""
        return command_id in self._may_send

    def can_send(self, now: float) -> bool:
        """Whether a submit_sm/data_sm/deliver_sm may go now (see ``next_send_at``)."""
        return self.next_send_at(now) <= now

    def next_deadline(self) -> float | None:
        """The earliest time ``tick`` has work to do; None when no timer runs."""
        if self._state is SessionState.CLOSED:
            return None
        deadlines = (self._in_flight.next_deadline(), self._state_deadline, self._keepalive_at())
        return min((d for d in deadlines if d is not None), default=None)

    def data_to_send(self) -> bytes:
        """Takes the bytes the session wants written to the socket (b"" when none)."""
        data = bytes(self._to_send)
        self._to_send.clear()
        return data

    # --- what the application tells the session ----------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Takes bytes read from the socket; b"" means the peer closed the connection."""
        events: list[Event] = []
        if self._state is SessionState.CLOSED:
            return events
        if not data:
            self._close(events, ConnectionClosed())
            return events
        self._last_received_at = now
        try:
            frames = self._splitter.feed(data)
        except PduError as error:
            self._on_broken_stream(error, events)
            return events
        for frame in frames:
            self._on_frame(frame, events)
            if self._is_closed():
                break
        return events

    def tick(self, now: float) -> list[Event]:
        """Fires the timers due by ``now``: time-outs and the enquire_link keep-alive."""
        events: list[Event] = []
        if self._state is SessionState.CLOSED:
            return events
        self._expire_requests(now, events)
        if self._state_deadline is not None and now >= self._state_deadline:
            self._close(events, CloseRequested(self._state_deadline_reason()))
        keepalive_at = self._keepalive_at()
        if keepalive_at is not None and now >= keepalive_at:
            self._send(EnquireLink(sequence_number=0), now + self._config.response_timeout)
            self._keepalive_in_flight = True
        return events

    def bind(
        self, mode: BindMode, system_id: str, password: str, now: float, system_type: str = ""
    ) -> None:
        """Client: sends a bind; ``Bound`` or ``BindFailed`` follows from receive_data/tick."""
        self._require(self._role == "client", "only a client binds")
        self._require(self._state is SessionState.OPEN, "bind() needs state OPEN")
        if mode not in BIND_REQUEST_BY_MODE:
            raise ValueError(f"mode must be transmitter, receiver or transceiver, not {mode!r}")
        request = BIND_REQUEST_BY_MODE[mode](
            sequence_number=0, system_id=system_id, password=password, system_type=system_type
        )
        self._send(request, None)  # timed by the state deadline
        self._enter(SessionState.BINDING)
        self._state_deadline = now + self._config.bind_timeout

    def accept_bind(self, system_id: str, now: float) -> Bound:
        """Server: answers the pending bind with success, naming us ``system_id``."""
        request = self._take_bind_to_answer()
        self._queue(response_to(request, CommandStatus.ESME_ROK, system_id=system_id))
        mode = MODE_BY_BIND_ID[request.command_id]
        self._enter(BOUND_BY_MODE[mode])
        self._last_received_at = now
        return Bound(mode=mode, peer_system_id=request.system_id)

    def reject_bind(self, command_status: int, now: float) -> None:
        """Server: refuses the pending bind (e.g. ESME_RINVPASWD); the peer may bind again."""
        if command_status == CommandStatus.ESME_ROK:
            raise ValueError("reject_bind needs an error status")
        request = self._take_bind_to_answer()
        self._queue(response_to(request, command_status))
        self._enter(SessionState.OPEN)
        self._start_bind_wait(now)

    def send_request(self, pdu: Pdu, now: float) -> int:
        """Sends submit_sm/data_sm/query_sm (client) or deliver_sm/data_sm (server).

        Returns the sequence number stamped on it; its answer comes as one
        ``ResponseReceived``, ``RequestTimedOut`` or ``RequestAbandoned``. Raises, changing
        nothing: ``SessionError`` if the bind does not allow the command, ``WindowFull``
        or ``Throttled`` when ``can_send(now)`` is false (query_sm is neither windowed nor
        paced), ``PduError`` if the PDU cannot be encoded.
        """
        command_id = pdu.command_id
        if command_id not in self._may_send:
            raise SessionError(
                f"a {self._role} cannot send {command_name(command_id)} in state {self._state.name}"
            )
        windowed = command_id in WINDOWED_REQUESTS
        if windowed:
            self._check_window_and_pace(now)
        sent = self._send(pdu, now + self._config.response_timeout, windowed=windowed)
        if windowed:
            self._pacer.record_send(now)
        return sent.sequence_number

    def respond(self, request: Pdu, command_status: int = 0, **fields: object) -> None:
        """Answers a ``RequestReceived`` request; body fields (e.g. message_id) by keyword.

        Does nothing once the session is CLOSED: the peer is gone and will ask again.
        Raises ``PduError``, changing nothing, if the response cannot be encoded.
        """
        if self._state is SessionState.CLOSED:
            return
        if request.command_id not in APPLICATION_REQUESTS:
            raise SessionError(f"respond() does not answer {command_name(request.command_id)}")
        self._require(self._state not in PRE_BIND_STATES, "nothing to answer before a bind")
        self._queue(response_to(request, command_status, **fields))

    def unbind(self, now: float) -> None:
        """Sends unbind; ``Unbound`` follows when the peer answers (``CloseRequested`` if not).

        Responses to requests still in flight are reported until then.
        """
        self._require(self.is_bound, "unbind() needs a bound session")
        self._send(Unbind(sequence_number=0), None)  # timed by the state deadline
        self._enter(SessionState.UNBINDING)
        self._state_deadline = now + self._config.unbind_timeout

    def pause_until(self, until: float) -> None:
        """Holds new windowed requests until ``until`` (say, after ESME_RTHROTTLED)."""
        self._paused_until = max(self._paused_until, until)

    # --- incoming PDUs -------------------------------------------------------------------

    def _on_frame(self, frame: bytes, events: list[Event]) -> None:
        try:
            pdu = decode(frame)
        except PduError as error:
            self._on_undecodable(error, events)
            return
        if is_response(pdu.command_id):
            self._on_response(pdu, events)
        else:
            self._on_request(pdu, events)

    def _on_request(self, pdu: Pdu, events: list[Event]) -> None:
        command_id = pdu.command_id
        if command_id in self._may_receive:
            events.append(RequestReceived(pdu))
        elif command_id == CommandId.ENQUIRE_LINK:
            self._queue(response_to(pdu))
        elif command_id == CommandId.UNBIND:
            self._queue(response_to(pdu))
            self._close(events, Unbound())
        elif isinstance(pdu, BIND_REQUESTS):
            self._on_bind_request(pdu, events)
        else:
            self._refuse(pdu, CommandStatus.ESME_RINVBNDSTS, events)

    def _on_bind_request(self, pdu: BindRequest, events: list[Event]) -> None:
        if self._role == "client":
            self._refuse(pdu, CommandStatus.ESME_RINVCMDID, events)
        elif self._state is not SessionState.OPEN:
            self._refuse(pdu, CommandStatus.ESME_RALYBND, events)
        else:
            self._bind_to_answer = pdu
            self._enter(SessionState.BINDING)
            self._state_deadline = None  # the application answers; no peer to wait for
            events.append(BindRequested(pdu))

    def _refuse(self, pdu: Pdu, command_status: int, events: list[Event]) -> None:
        self._queue(response_to(pdu, command_status))
        events.append(
            ProtocolError(
                f"refused {command_name(pdu.command_id)} #{pdu.sequence_number}: not allowed for a "
                f"{self._role} in state {self._state.name}"
            )
        )

    def _on_response(self, response: Pdu, events: list[Event]) -> None:
        pending = self._in_flight.get(response.sequence_number)
        if pending is None or not answers(response, pending.request):
            events.append(UnexpectedResponse(response))
            return
        self._in_flight.remove(pending)
        request = pending.request
        command_id = request.command_id
        if command_id in APPLICATION_REQUESTS:
            events.append(ResponseReceived(request, response))
        elif command_id == CommandId.ENQUIRE_LINK:
            self._keepalive_in_flight = False
        elif command_id == CommandId.UNBIND:
            self._close(events, Unbound())  # any answer, even an error, ends the session
        else:
            self._on_bind_response(request, response, events)

    def _on_bind_response(self, request: Pdu, response: Pdu, events: list[Event]) -> None:
        self._state_deadline = None
        succeeded = response.command_status == CommandStatus.ESME_ROK
        if succeeded and isinstance(response, BIND_RESPONSES):
            mode = MODE_BY_BIND_ID[request.command_id]
            self._enter(BOUND_BY_MODE[mode])
            events.append(Bound(mode=mode, peer_system_id=response.system_id))
        else:
            self._enter(SessionState.OPEN)  # a generic_nack may say ROK; it is no bind
            status = response.command_status or CommandStatus.ESME_RBINDFAIL
            events.append(BindFailed(command_status=status))

    def _on_undecodable(self, error: PduError, events: list[Event]) -> None:
        events.append(ProtocolError(f"undecodable PDU: {error}"))
        command_id, sequence_number = error.command_id, error.sequence_number
        # Never answer a response: two peers nacking each other's nacks would never stop.
        if sequence_number is None or command_id is None or is_response(command_id):
            return
        request_class = REQUEST_CLASS_BY_ID.get(command_id)
        if request_class is None:  # an unknown command: generic_nack, as SMPP 3.4 asks
            self._queue(GenericNack(sequence_number, error.command_status))
        else:  # a known request with a bad body: its own resp says what was wrong
            request = request_class(sequence_number=sequence_number)
            self._queue(response_to(request, error.command_status))

    def _on_broken_stream(self, error: PduError, events: list[Event]) -> None:
        events.append(ProtocolError(f"unreadable byte stream: {error}"))
        self._queue(GenericNack(error.sequence_number or 0, error.command_status))
        self._close(events, CloseRequested("the byte stream cannot be split into PDUs"))

    # --- timers --------------------------------------------------------------------------

    def _expire_requests(self, now: float, events: list[Event]) -> None:
        keepalive_lost = False
        for pending in self._in_flight.pop_expired(now):
            if pending.request.command_id == CommandId.ENQUIRE_LINK:
                keepalive_lost = True
            else:
                events.append(RequestTimedOut(pending.request))
        if keepalive_lost:
            seconds = self._config.response_timeout
            self._close(events, CloseRequested(f"no enquire_link_resp within {seconds} s"))

    def _keepalive_at(self) -> float | None:
        if self._keepalive_in_flight or self._state not in BOUND_STATES:
            return None
        return self._last_received_at + self._config.enquire_link_interval

    def _start_bind_wait(self, now: float) -> None:
        if self._limits_bind_wait:
            self._state_deadline = now + self._config.bind_timeout

    def _state_deadline_reason(self) -> str:
        if self._state is SessionState.UNBINDING:
            return f"no unbind_resp within {self._config.unbind_timeout} s"
        if self._state is SessionState.BINDING:
            return f"no bind response within {self._config.bind_timeout} s"
        return f"no bind within {self._config.bind_timeout} s"

    # --- plumbing ------------------------------------------------------------------------

    def _enter(self, state: SessionState) -> None:
        self._state = state
        self._may_send = may_send(self._role, state)
        self._may_receive = may_receive(self._role, state)
        self._sends_windowed = not self._may_send.isdisjoint(WINDOWED_REQUESTS)

    def _send(self, pdu: Pdu, deadline: float | None, *, windowed: bool = False) -> Pdu:
        numbered = replace(pdu, sequence_number=self._sequence_numbers.allocate(self._in_flight))
        self._to_send += encode(numbered)  # first: a PduError here leaves the books untouched
        self._in_flight.add(numbered, deadline, windowed=windowed)
        return numbered

    def _queue(self, pdu: Pdu) -> None:
        self._to_send += encode(pdu)

    def _check_window_and_pace(self, now: float) -> None:
        if self._in_flight.windowed >= self._config.window:
            raise WindowFull(f"{self._config.window} requests already await a response")
        allowed_at = max(self._paused_until, self._pacer.next_at(now))
        if allowed_at > now:
            raise Throttled(allowed_at)

    def _take_bind_to_answer(self) -> BindRequest:
        request = self._bind_to_answer
        if self._role != "server" or self._state is not SessionState.BINDING or request is None:
            raise SessionError(f"no bind awaits an answer (state {self._state.name})")
        self._bind_to_answer = None
        return request

    def _close(self, events: list[Event], final_event: Event) -> None:
        for pending in self._in_flight.pop_all():
            events.extend(_abandoned(pending))
        self._bind_to_answer = None
        self._state_deadline = None
        self._enter(SessionState.CLOSED)
        events.append(final_event)

    def _is_closed(self) -> bool:
        return self._state is SessionState.CLOSED  # a method: mypy keeps no narrowing across

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            raise SessionError(f"{message} (a {self._role} in state {self._state.name})")


def _abandoned(pending: Pending) -> list[Event]:
    command_id = pending.request.command_id
    if command_id in APPLICATION_REQUESTS:
        return [RequestAbandoned(pending.request)]
    if command_id in MODE_BY_BIND_ID:
        return [BindFailed(command_status=None)]
    return []  # enquire_link, unbind: the final event says it all
