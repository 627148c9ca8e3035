"""The SMPP session state machine, client side, driven through bytes on the wire.

Pure: no sockets, no sleeping. PDUs are encoded with the codec, fed to the session,
and what it writes is read back with ``FrameSplitter`` and ``decode``; time is a
number passed in. The server side and two sessions back to back are in
``test_session_server.py``.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tidings.connectors.smpp._states import BindRequest
from tidings.connectors.smpp._window import MAX_SEQUENCE_NUMBER, SequenceNumbers
from tidings.connectors.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FrameSplitter,
    GenericNack,
    Pdu,
    PduError,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from tidings.connectors.smpp.session import (
    BindFailed,
    BindMode,
    Bound,
    CloseRequested,
    ConnectionClosed,
    Event,
    ProtocolError,
    RequestAbandoned,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Session,
    SessionConfig,
    SessionError,
    SessionState,
    Throttled,
    Unbound,
    UnexpectedResponse,
    WindowFull,
)

T0 = 1_000.0  # monotonic clocks start anywhere; not at zero here, to catch mix-ups
CONFIG = SessionConfig()
TERMINAL_EVENTS = (Unbound, ConnectionClosed, CloseRequested)


# --- helpers shared with test_session_server.py -----------------------------------------


def wire(*pdus: Pdu) -> bytes:
    return b"".join(encode(pdu) for pdu in pdus)


def written(session: Session) -> list[Pdu]:
    """Everything the session wants to send, decoded (it must always be valid SMPP)."""
    return [decode(frame) for frame in FrameSplitter().feed(session.data_to_send())]


def a_submit(text: bytes = b"hello") -> SubmitSm:
    return SubmitSm(
        sequence_number=0, source_addr="Tidings", destination_addr="14155550100",
        short_message=text,
    )  # fmt: skip


def a_receipt(message_id: str) -> DeliverSm:
    text = f"id:{message_id} sub:001 dlvrd:001 stat:DELIVRD err:000 text:".encode()
    return DeliverSm(sequence_number=0, esm_class=0x04, short_message=text)


_BIND_RESPONSE = {
    "transmitter": BindTransmitterResp,
    "receiver": BindReceiverResp,
    "transceiver": BindTransceiverResp,
}


def bound_client(
    mode: BindMode = "transceiver", config: SessionConfig = CONFIG, now: float = T0
) -> Session:
    session = Session("client", config)
    session.bind(mode, "esme", "secret", now)
    (bind,) = written(session)
    response = _BIND_RESPONSE[mode](sequence_number=bind.sequence_number, system_id="SMSC")
    assert session.receive_data(wire(response), now) == [Bound(mode, "SMSC")]
    return session


def sent_request(session: Session, pdu: Pdu, now: float = T0) -> Pdu:
    """Sends ``pdu`` and returns it as it went on the wire (with its sequence number)."""
    sequence_number = session.send_request(pdu, now)
    (on_the_wire,) = written(session)
    assert on_the_wire.sequence_number == sequence_number
    return on_the_wire


# --- binding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "request_type", "state"),
    [
        ("transmitter", BindTransmitter, SessionState.BOUND_TX),
        ("receiver", BindReceiver, SessionState.BOUND_RX),
        ("transceiver", BindTransceiver, SessionState.BOUND_TRX),
    ],
)
def test_a_client_binds_in_each_mode(
    mode: BindMode, request_type: type[BindRequest], state: SessionState
) -> None:
    session = Session("client", CONFIG)
    assert session.state is SessionState.OPEN
    session.bind(mode, "esme", "secret", T0, system_type="VMA")
    (bind,) = written(session)
    assert bind == request_type(
        bind.sequence_number, system_id="esme", password="secret", system_type="VMA"
    )
    assert (session.state, session.next_deadline()) == (
        SessionState.BINDING,
        T0 + CONFIG.bind_timeout,
    )
    response = _BIND_RESPONSE[mode](sequence_number=bind.sequence_number, system_id="SMSC")
    assert session.receive_data(wire(response), T0 + 1) == [Bound(mode, "SMSC")]
    assert session.state is state
    assert session.is_bound


def test_a_refused_bind_reports_its_status_and_may_be_retried() -> None:
    session = Session("client", CONFIG)
    session.bind("transmitter", "esme", "wrong", T0)
    (bind,) = written(session)
    refusal = BindTransmitterResp(bind.sequence_number, CommandStatus.ESME_RINVPASWD)
    assert session.receive_data(wire(refusal), T0) == [BindFailed(CommandStatus.ESME_RINVPASWD)]
    assert session.state is SessionState.OPEN
    assert session.next_deadline() is None
    session.bind("transmitter", "esme", "right", T0)
    (retry,) = written(session)
    assert (retry.sequence_number, session.state) == (2, SessionState.BINDING)


def test_a_generic_nack_to_the_bind_is_a_failed_bind() -> None:
    session = Session("client", CONFIG)
    session.bind("transceiver", "esme", "secret", T0)
    (bind,) = written(session)
    nack = GenericNack(bind.sequence_number, CommandStatus.ESME_RINVCMDID)
    assert session.receive_data(wire(nack), T0) == [BindFailed(CommandStatus.ESME_RINVCMDID)]


def test_an_unanswered_bind_times_out_and_closes() -> None:
    session = Session("client", CONFIG)
    session.bind("transceiver", "esme", "secret", T0)
    deadline = T0 + CONFIG.bind_timeout
    assert session.tick(deadline - 0.001) == []
    events = session.tick(deadline)
    assert events == [BindFailed(None), CloseRequested(f"no bind response within {10.0} s")]
    assert session.state is SessionState.CLOSED
    assert session.next_deadline() is None


def test_bind_refuses_misuse() -> None:
    session = Session("client", CONFIG)
    with pytest.raises(ValueError, match="mode"):
        session.bind("sideways", "esme", "secret", T0)  # type: ignore[arg-type]
    session.bind("transceiver", "esme", "secret", T0)
    with pytest.raises(SessionError, match="OPEN"):
        session.bind("transceiver", "esme", "secret", T0)
    with pytest.raises(SessionError, match="only a client"):
        Session("server", CONFIG).bind("transceiver", "esme", "secret", T0)
    with pytest.raises(SessionError, match="no bind awaits"):
        session.accept_bind("SMSC", T0)


def test_a_bind_response_arriving_when_none_is_pending_is_unexpected() -> None:
    session = bound_client()
    stray = BindTransceiverResp(sequence_number=1, system_id="SMSC")
    assert session.receive_data(wire(stray), T0) == [UnexpectedResponse(stray)]
    assert session.state is SessionState.BOUND_TRX


# --- requests and responses ----------------------------------------------------------------


def test_a_submit_and_its_response() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    assert submit == replace(a_submit(), sequence_number=submit.sequence_number)
    assert session.outstanding == 1
    response = SubmitSmResp(submit.sequence_number, message_id="abc123")
    assert session.receive_data(wire(response), T0 + 0.5) == [ResponseReceived(submit, response)]
    assert session.outstanding == 0


def test_error_statuses_and_generic_nacks_are_responses_too() -> None:
    session = bound_client()
    throttled_submit = sent_request(session, a_submit())
    nacked_submit = sent_request(session, a_submit())
    throttled = SubmitSmResp(throttled_submit.sequence_number, CommandStatus.ESME_RTHROTTLED)
    nack = GenericNack(nacked_submit.sequence_number, CommandStatus.ESME_RINVCMDLEN)
    assert session.receive_data(wire(throttled, nack), T0) == [
        ResponseReceived(throttled_submit, throttled),
        ResponseReceived(nacked_submit, nack),
    ]
    assert session.outstanding == 0


def test_a_response_of_the_wrong_kind_leaves_the_request_waiting() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    wrong = EnquireLinkResp(submit.sequence_number)
    assert session.receive_data(wire(wrong), T0) == [UnexpectedResponse(wrong)]
    assert session.outstanding == 1


def test_sequence_numbers_are_the_sessions_not_the_applications() -> None:
    session = bound_client()  # the bind took number 1
    stamped = replace(a_submit(), sequence_number=777)
    assert [session.send_request(stamped, T0) for _ in range(3)] == [2, 3, 4]


def test_an_unencodable_request_raises_and_changes_nothing() -> None:
    session = bound_client(config=SessionConfig(tps=1.0))
    too_long = SubmitSm(sequence_number=0, destination_addr="1" * 40)
    with pytest.raises(PduError):
        session.send_request(too_long, T0)
    assert (session.outstanding, session.data_to_send(), session.can_send(T0)) == (0, b"", True)


def test_what_a_bind_allows_the_client_to_send() -> None:
    with pytest.raises(SessionError, match="cannot send submit_sm in state OPEN"):
        Session("client", CONFIG).send_request(a_submit(), T0)
    receiver = bound_client("receiver")
    with pytest.raises(SessionError, match="cannot send submit_sm in state BOUND_RX"):
        receiver.send_request(a_submit(), T0)
    assert receiver.next_send_at(T0) == math.inf
    assert not receiver.can_send(T0)
    transmitter = bound_client("transmitter")
    for allowed in (a_submit(), DataSm(0, destination_addr="1"), QuerySm(0, message_id="x")):
        transmitter.send_request(allowed, T0)
    for not_allowed in (a_receipt("x"), EnquireLink(0), Unbind(0), SubmitSmResp(0)):
        with pytest.raises(SessionError):
            transmitter.send_request(not_allowed, T0)


def test_what_a_bind_allows_the_peer_to_send() -> None:
    transmitter = bound_client("transmitter")
    receipt = DeliverSm(sequence_number=41, esm_class=0x04)
    events = transmitter.receive_data(wire(receipt), T0)
    assert [type(event) for event in events] == [ProtocolError]
    assert written(transmitter) == [DeliverSmResp(41, CommandStatus.ESME_RINVBNDSTS)]
    receiver = bound_client("receiver")
    assert receiver.receive_data(wire(receipt), T0) == [RequestReceived(receipt)]
    receiver.respond(receipt)
    assert written(receiver) == [DeliverSmResp(41)]


def test_requests_before_the_bind_are_refused() -> None:
    session = Session("client", CONFIG)
    events = session.receive_data(wire(DeliverSm(7), BindTransmitter(8)), T0)
    assert [type(event) for event in events] == [ProtocolError, ProtocolError]
    answers = written(session)
    assert [(a.command_id, a.sequence_number, a.command_status) for a in answers] == [
        (CommandId.DELIVER_SM_RESP, 7, CommandStatus.ESME_RINVBNDSTS),
        (CommandId.BIND_TRANSMITTER_RESP, 8, CommandStatus.ESME_RINVCMDID),  # we are no SMSC
    ]


def test_respond_answers_only_what_the_application_is_given() -> None:
    session = bound_client()
    for not_ours in (EnquireLink(3), Unbind(3), SubmitSmResp(3), BindTransceiver(3)):
        with pytest.raises(SessionError, match="does not answer"):
            session.respond(not_ours)
    with pytest.raises(SessionError, match="before a bind"):
        Session("client", CONFIG).respond(DeliverSm(3))
    session.respond(DeliverSm(3), message_id="")
    assert written(session) == [DeliverSmResp(3)]


# --- the window, the send rate, pauses -----------------------------------------------------


def test_the_window_fills_and_a_response_frees_it() -> None:
    session = bound_client(config=SessionConfig(window=3))
    submits = [sent_request(session, a_submit()) for _ in range(3)]
    assert session.outstanding == 3
    assert not session.can_send(T0)
    assert session.next_send_at(T0) == math.inf
    with pytest.raises(WindowFull):
        session.send_request(a_submit(), T0)
    session.send_request(QuerySm(0, message_id="m1"), T0)  # not windowed
    assert session.outstanding == 3
    session.receive_data(wire(SubmitSmResp(submits[1].sequence_number)), T0)
    assert session.outstanding == 2
    assert session.next_send_at(T0 + 1) == T0 + 1


def test_the_send_rate_spaces_requests_evenly() -> None:
    session = bound_client(config=SessionConfig(window=100, tps=10.0))
    assert session.next_send_at(T0) == T0
    session.send_request(a_submit(), T0)
    assert session.next_send_at(T0) == pytest.approx(T0 + 0.1)
    with pytest.raises(Throttled) as raised:
        session.send_request(a_submit(), T0 + 0.05)
    assert raised.value.retry_at == pytest.approx(T0 + 0.1)
    sent_at = [T0]
    for _ in range(20):  # an adapter that sleeps exactly until next_send_at
        at = session.next_send_at(sent_at[-1])
        assert session.can_send(at)
        session.send_request(a_submit(), at)
        sent_at.append(at)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert gaps == pytest.approx([0.1] * 20)


def test_a_quiet_spell_allows_a_burst_of_tps_burst() -> None:
    session = bound_client(config=SessionConfig(window=100, tps=10.0, tps_burst=3))
    for _ in range(3):
        session.send_request(a_submit(), T0)
    assert session.next_send_at(T0) == pytest.approx(T0 + 0.1)
    idle_until = T0 + 60.0  # a long rest buys no more than the burst
    for _ in range(3):
        session.send_request(a_submit(), idle_until)
    assert not session.can_send(idle_until)


def test_a_late_waking_sender_loses_nothing_within_its_burst() -> None:
    session = bound_client(config=SessionConfig(window=1000, tps=100.0, tps_burst=2))
    now, sent = T0, 0
    while now < T0 + 10.0:
        while session.can_send(now):
            session.send_request(a_submit(), now)
            sent += 1
        now = session.next_send_at(now) + 0.004  # always 4 ms late, under one interval
    assert sent == pytest.approx(1000, abs=2)


def test_pause_until_holds_windowed_requests() -> None:
    session = bound_client(config=SessionConfig(tps=100.0))
    session.pause_until(T0 + 5.0)
    session.pause_until(T0 + 1.0)  # a pause only ever grows
    assert session.next_send_at(T0) == T0 + 5.0
    with pytest.raises(Throttled) as raised:
        session.send_request(a_submit(), T0 + 4.9)
    assert raised.value.retry_at == T0 + 5.0
    session.send_request(QuerySm(0, message_id="m1"), T0)  # not windowed, not paused
    assert session.can_send(T0 + 5.0)


# --- time-outs -----------------------------------------------------------------------------


def test_an_unanswered_request_times_out_once_and_leaves_the_window() -> None:
    session = bound_client(config=SessionConfig(window=1))
    submit = sent_request(session, a_submit())
    deadline = T0 + CONFIG.response_timeout
    assert session.next_deadline() == deadline
    assert session.tick(deadline - 0.001) == []
    assert session.tick(deadline) == [RequestTimedOut(submit)]
    assert session.outstanding == 0
    assert session.can_send(deadline)
    assert session.tick(deadline + 1) == []


def test_a_late_response_is_reported_as_unexpected() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    session.tick(T0 + CONFIG.response_timeout)
    late = SubmitSmResp(submit.sequence_number, message_id="abc")
    assert session.receive_data(wire(late), T0 + 11) == [UnexpectedResponse(late)]
    assert session.state is SessionState.BOUND_TRX
    assert session.data_to_send() == b""


def test_requests_time_out_in_send_order_skipping_answered_ones() -> None:
    session = bound_client()
    first, second, third = (sent_request(session, a_submit(), T0 + i) for i in range(3))
    session.receive_data(wire(SubmitSmResp(first.sequence_number)), T0 + 3)
    assert session.next_deadline() == T0 + 1 + CONFIG.response_timeout
    assert session.tick(T0 + 2 + CONFIG.response_timeout) == [
        RequestTimedOut(second),
        RequestTimedOut(third),
    ]
    assert session.next_deadline() == T0 + 3 + CONFIG.enquire_link_interval


# --- keep-alive ----------------------------------------------------------------------------


def test_enquire_link_goes_out_after_an_idle_interval() -> None:
    session = bound_client()
    idle_at = T0 + CONFIG.enquire_link_interval
    assert session.next_deadline() == idle_at
    assert session.tick(idle_at - 0.001) == []
    assert session.data_to_send() == b""
    assert session.tick(idle_at) == []
    (probe,) = written(session)
    assert isinstance(probe, EnquireLink)
    assert session.tick(idle_at + 5) == []  # one probe at a time
    assert session.data_to_send() == b""
    answered_at = idle_at + 1
    assert session.receive_data(wire(EnquireLinkResp(probe.sequence_number)), answered_at) == []
    assert session.next_deadline() == answered_at + CONFIG.enquire_link_interval


def test_anything_received_postpones_the_keepalive() -> None:
    session = bound_client()
    session.receive_data(wire(EnquireLink(99)), T0 + 20)
    assert session.next_deadline() == T0 + 20 + CONFIG.enquire_link_interval


def test_an_unanswered_enquire_link_closes_the_session() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit(), T0 + 25)
    session.tick(T0 + 30)
    probe_deadline = T0 + 30 + CONFIG.response_timeout
    events = session.tick(probe_deadline)
    assert events == [
        RequestTimedOut(submit),  # due first: sent before the probe
        CloseRequested(f"no enquire_link_resp within {CONFIG.response_timeout} s"),
    ]
    assert session.state is SessionState.CLOSED


def test_an_enquire_link_from_the_peer_is_answered_in_any_state() -> None:
    for session in (Session("client", CONFIG), bound_client()):
        assert session.receive_data(wire(EnquireLink(123)), T0) == []
        assert written(session) == [EnquireLinkResp(123)]


# --- unbinding and closing -----------------------------------------------------------------


def test_our_unbind_waits_for_answers_then_ends_the_session() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    session.unbind(T0 + 1)
    (unbind,) = written(session)
    assert isinstance(unbind, Unbind)
    assert session.state is SessionState.UNBINDING
    assert session.next_deadline() == T0 + 1 + CONFIG.unbind_timeout
    with pytest.raises(SessionError):
        session.send_request(a_submit(), T0 + 1)
    response = SubmitSmResp(submit.sequence_number, message_id="m")
    assert session.receive_data(wire(response), T0 + 2) == [ResponseReceived(submit, response)]
    refused = session.receive_data(wire(DeliverSm(50)), T0 + 2)
    assert [type(event) for event in refused] == [ProtocolError]
    assert written(session) == [DeliverSmResp(50, CommandStatus.ESME_RINVBNDSTS)]
    events = session.receive_data(wire(UnbindResp(unbind.sequence_number)), T0 + 3)
    assert (events, session.state) == ([Unbound()], SessionState.CLOSED)


def test_requests_unanswered_when_the_session_ends_are_abandoned() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    session.unbind(T0)
    (unbind,) = written(session)
    events = session.receive_data(wire(UnbindResp(unbind.sequence_number)), T0)
    assert events == [RequestAbandoned(submit), Unbound()]


def test_an_unanswered_unbind_closes_the_session() -> None:
    session = bound_client()
    session.unbind(T0)
    assert session.tick(T0 + CONFIG.unbind_timeout) == [
        CloseRequested(f"no unbind_resp within {CONFIG.unbind_timeout} s")
    ]
    assert session.state is SessionState.CLOSED


def test_unbind_needs_a_bound_session() -> None:
    with pytest.raises(SessionError, match="bound"):
        Session("client", CONFIG).unbind(T0)


def test_the_peers_unbind_is_answered_and_ends_the_session() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    after = DeliverSm(61)  # arrives in the same chunk, after the unbind: never looked at
    events = session.receive_data(wire(Unbind(60), after), T0)
    assert events == [RequestAbandoned(submit), Unbound()]
    assert written(session) == [UnbindResp(60)]
    assert session.state is SessionState.CLOSED


def test_the_peer_closing_ends_the_session_for_good() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    assert session.receive_data(b"", T0) == [RequestAbandoned(submit), ConnectionClosed()]
    assert session.state is SessionState.CLOSED
    assert session.receive_data(wire(SubmitSmResp(submit.sequence_number)), T0) == []
    assert session.receive_data(b"", T0) == []
    assert session.tick(T0 + 3600) == []
    assert session.next_deadline() is None
    assert session.next_send_at(T0) == math.inf
    session.respond(DeliverSm(5))  # too late to answer: nothing happens
    assert session.data_to_send() == b""
    with pytest.raises(SessionError):
        session.send_request(a_submit(), T0)


def test_a_bind_in_flight_when_the_peer_closes_fails() -> None:
    session = Session("client", CONFIG)
    session.bind("receiver", "esme", "secret", T0)
    assert session.receive_data(b"", T0) == [BindFailed(None), ConnectionClosed()]


# --- bad input -----------------------------------------------------------------------------


def raw_frame(command_id: int, sequence_number: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence_number) + body


def test_an_unknown_command_gets_a_generic_nack() -> None:
    session = bound_client()
    events = session.receive_data(raw_frame(0x00000102, 33), T0)  # alert_notification? not ours
    assert [type(event) for event in events] == [ProtocolError]
    assert written(session) == [GenericNack(33, CommandStatus.ESME_RINVCMDID)]
    assert session.state is SessionState.BOUND_TRX


def test_a_known_request_with_a_bad_body_gets_its_own_error_response() -> None:
    session = bound_client("receiver")
    events = session.receive_data(raw_frame(CommandId.DELIVER_SM, 34, b"\xff" * 3), T0)
    assert [type(event) for event in events] == [ProtocolError]
    (answer,) = written(session)
    assert (answer.command_id, answer.sequence_number) == (CommandId.DELIVER_SM_RESP, 34)
    assert answer.command_status != CommandStatus.ESME_ROK


def test_an_undecodable_response_is_never_answered() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    garbled = raw_frame(CommandId.SUBMIT_SM_RESP, submit.sequence_number, b"\xff" * 80)
    events = session.receive_data(garbled, T0)
    assert [type(event) for event in events] == [ProtocolError]
    assert session.data_to_send() == b""
    assert session.outstanding == 1  # it will time out


def test_a_broken_stream_is_nacked_and_closes_the_session() -> None:
    session = bound_client()
    submit = sent_request(session, a_submit())
    events = session.receive_data(b"\x00\x00\x00\x05garbage", T0)
    assert [type(event) for event in events] == [ProtocolError, RequestAbandoned, CloseRequested]
    assert events[1] == RequestAbandoned(submit)
    assert written(session) == [GenericNack(0, CommandStatus.ESME_RINVCMDLEN)]
    assert session.state is SessionState.CLOSED


def test_many_pdus_in_one_chunk_and_pdus_split_across_chunks() -> None:
    session = bound_client(config=SessionConfig(window=50))
    submits = [sent_request(session, a_submit()) for _ in range(50)]
    responses = [SubmitSmResp(s.sequence_number, message_id=f"m{i}") for i, s in enumerate(submits)]
    stream = wire(*responses)
    expected = [ResponseReceived(s, r) for s, r in zip(submits, responses, strict=True)]
    assert session.receive_data(stream[:-1], T0) == expected[:-1]
    assert session.receive_data(stream[-1:], T0) == expected[-1:]

    bytewise = bound_client(config=SessionConfig(window=50))
    submits = [sent_request(bytewise, a_submit()) for _ in range(50)]
    events: list[Event] = []
    for index in range(len(stream)):
        events += bytewise.receive_data(stream[index : index + 1], T0)
    assert events == expected


# --- sequence numbers ----------------------------------------------------------------------


def test_sequence_numbers_wrap_to_one_and_skip_numbers_in_use() -> None:
    numbers = SequenceNumbers(start=MAX_SEQUENCE_NUMBER - 1)
    in_use = {MAX_SEQUENCE_NUMBER, 1, 2}
    assert [numbers.allocate(in_use) for _ in range(3)] == [MAX_SEQUENCE_NUMBER - 1, 3, 4]
    plain = SequenceNumbers(start=MAX_SEQUENCE_NUMBER)
    assert [plain.allocate(set()) for _ in range(2)] == [MAX_SEQUENCE_NUMBER, 1]
    with pytest.raises(ValueError, match="sequence numbers"):
        SequenceNumbers(start=0)


def test_config_refuses_nonsense() -> None:
    for bad in ({"window": 0}, {"tps": 0.0}, {"tps_burst": 0}, {"response_timeout": 0.0}):
        with pytest.raises(ValueError, match="must be"):
            SessionConfig(**bad)
    with pytest.raises(ValueError, match="role"):
        Session("peer", CONFIG)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------

_COMMAND_IDS = st.sampled_from([int(c) for c in CommandId]) | st.integers(0, 0xFFFFFFFF)
_FRAME_LIKE = st.builds(
    raw_frame,
    command_id=_COMMAND_IDS,
    sequence_number=st.integers(0, 0xFFFFFFFF),
    body=st.binary(max_size=80),
    status=st.sampled_from([0, 0x58]) | st.integers(0, 0xFFFFFFFF),
)
_VALID_PDUS = st.sampled_from(
    [
        wire(BindTransceiverResp(1, system_id="SMSC")),
        wire(BindTransmitter(1, system_id="esme", password="pw")),
        wire(SubmitSm(2, destination_addr="1555")),
        wire(DeliverSm(3, esm_class=4, short_message=b"id:1 stat:DELIVRD")),
        wire(SubmitSmResp(2, message_id="x")),
        wire(EnquireLink(4), EnquireLinkResp(1)),
        wire(GenericNack(2, 3)),
        wire(Unbind(5)),
    ]
)


def fresh_sessions() -> list[Session]:
    binding = Session("client", CONFIG)
    binding.bind("transceiver", "esme", "secret", T0)
    server = Session("server", CONFIG, now=T0)
    return [binding, bound_client("transmitter"), bound_client("receiver"), server]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(_FRAME_LIKE | _VALID_PDUS | st.binary(max_size=24), max_size=12),
    cuts=st.lists(st.integers(0, 2_000), max_size=6),
    which=st.integers(0, 3),
)
def test_any_byte_stream_yields_only_events(
    pieces: list[bytes], cuts: list[int], which: int
) -> None:
    session = fresh_sessions()[which]
    session.data_to_send()
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    for start, end in itertools.pairwise(bounds):
        events = session.receive_data(stream[start:end], T0)
        assert all(isinstance(event, Event) for event in events)
        written(session)  # whatever it answers decodes
        session.tick(T0 + 1)
    assert session.outstanding <= CONFIG.window


class WindowAccounting(RuleBasedStateMachine):
    """Sends, answers, late answers, keep-alives, time passing, the peer closing: the window
    holds and every windowed request ends in exactly one final event."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.config = CONFIG
        self.session = Session("client", CONFIG)
        self.awaiting: dict[int, Pdu] = {}
        self.settled: list[int] = []
        self.probes: list[int] = []  # enquire_links the session sent, not yet answered

    @initialize(window=st.integers(1, 5), tps=st.sampled_from([None, 20.0]))
    def bind(self, window: int, tps: float | None) -> None:
        self.config = SessionConfig(
            window=window, tps=tps, response_timeout=1.0, enquire_link_interval=2.0
        )
        self.session = bound_client(config=self.config, now=self.now)

    def absorb(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived | RequestTimedOut | RequestAbandoned):
                number = event.request.sequence_number
                assert self.awaiting.pop(number) == event.request  # once, and it was ours
                self.settled.append(number)
            else:
                assert isinstance(event, UnexpectedResponse | ConnectionClosed | CloseRequested)
        for pdu in written(self.session):
            if isinstance(pdu, EnquireLink):
                self.probes.append(pdu.sequence_number)
            else:
                assert isinstance(pdu, SubmitSm)
                self.awaiting[pdu.sequence_number] = pdu

    @rule()
    def send(self) -> None:
        if self.session.can_send(self.now):
            number = self.session.send_request(a_submit(), self.now)
            assert number not in self.awaiting
            assert number not in self.settled
        elif self.session.is_bound:
            with pytest.raises((WindowFull, Throttled)):
                self.session.send_request(a_submit(), self.now)
        self.absorb([])

    @precondition(lambda self: bool(self.probes))
    @rule()
    def answer_probes(self) -> None:
        answers = wire(*(EnquireLinkResp(number) for number in self.probes))
        self.probes.clear()
        self.absorb(self.session.receive_data(answers, self.now))

    @precondition(lambda self: bool(self.awaiting))
    @rule(
        pick=st.integers(0, 100),
        answer=st.sampled_from(["ok", "throttled", "nack"]),
        cut=st.integers(0, 40),
    )
    def answer(self, pick: int, answer: str, cut: int) -> None:
        number = sorted(self.awaiting)[pick % len(self.awaiting)]
        response: Pdu = {
            "ok": SubmitSmResp(number, message_id=f"m{number}"),
            "throttled": SubmitSmResp(number, CommandStatus.ESME_RTHROTTLED),
            "nack": GenericNack(number, CommandStatus.ESME_RSYSERR),
        }[answer]
        data = wire(response)
        self.absorb(self.session.receive_data(data[:cut], self.now))
        self.absorb(self.session.receive_data(data[cut:], self.now))

    @precondition(lambda self: bool(self.settled))
    @rule(pick=st.integers(0, 100))
    def answer_late(self, pick: int) -> None:
        number = self.settled[pick % len(self.settled)]
        late = SubmitSmResp(number, message_id="late")
        events = self.session.receive_data(wire(late), self.now)
        assert events == ([] if self.session.state is SessionState.CLOSED else [
            UnexpectedResponse(late)
        ])  # fmt: skip

    @rule(seconds=st.floats(0.0, 0.7))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.absorb(self.session.tick(self.now))

    @rule(dice=st.integers(0, 9))
    def peer_closes_now_and_then(self, dice: int) -> None:
        if dice == 0:  # rarely, so that most runs get far
            self.absorb(self.session.receive_data(b"", self.now))

    @invariant()
    def the_window_holds(self) -> None:
        assert self.session.outstanding <= self.config.window
        assert self.session.outstanding == len(self.awaiting)
        if self.session.outstanding == self.config.window:
            assert self.session.next_send_at(self.now) == math.inf

    def teardown(self) -> None:
        self.absorb(self.session.tick(self.now + self.config.response_timeout))
        assert not self.awaiting


TestWindowAccounting = WindowAccounting.TestCase
TestWindowAccounting.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
