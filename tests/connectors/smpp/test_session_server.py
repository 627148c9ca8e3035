"""The SMPP session as the SMSC (server side), and a client and a server back to back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.connectors.smpp.test_session import (
    CONFIG,
    T0,
    a_receipt,
    a_submit,
    wire,
    written,
)
from tidings.connectors.smpp._states import BindRequest
from tidings.connectors.smpp.pdu import (
    BindReceiver,
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
    QuerySm,
    SubmitSm,
    SubmitSmResp,
)
from tidings.connectors.smpp.session import (
    BindRequested,
    Bound,
    CloseRequested,
    Event,
    ProtocolError,
    RequestReceived,
    ResponseReceived,
    Session,
    SessionConfig,
    SessionError,
    SessionState,
    Unbound,
)

BIND = BindTransceiver(sequence_number=1, system_id="esme", password="secret")


def bound_server(bind: BindRequest = BIND, config: SessionConfig = CONFIG) -> Session:
    server = Session("server", config, now=T0)
    assert server.receive_data(wire(bind), T0) == [BindRequested(bind)]
    server.accept_bind("SMSC", T0)
    written(server)
    return server


def statuses(session: Session) -> list[tuple[int, int, int]]:
    return [(p.command_id, p.sequence_number, p.command_status) for p in written(session)]


# --- binding -------------------------------------------------------------------------------


def test_a_bind_request_is_the_applications_to_accept() -> None:
    server = Session("server", CONFIG, now=T0)
    assert server.receive_data(wire(BIND), T0) == [BindRequested(BIND)]
    assert server.state is SessionState.BINDING
    assert server.next_deadline() is None  # the application decides; no timer runs
    assert server.accept_bind("SMSC", T0 + 1) == Bound("transceiver", "esme")
    assert written(server) == [BindTransceiverResp(1, system_id="SMSC")]
    assert server.is_bound
    assert server.next_deadline() == T0 + 1 + CONFIG.enquire_link_interval


@pytest.mark.parametrize(
    ("bind", "state"),
    [
        (BindTransmitter(5), SessionState.BOUND_TX),
        (BindReceiver(5), SessionState.BOUND_RX),
        (BindTransceiver(5), SessionState.BOUND_TRX),
    ],
)
def test_the_bind_type_sets_the_state(bind: BindRequest, state: SessionState) -> None:
    assert bound_server(bind).state is state


def test_a_rejected_bind_may_be_retried_within_the_bind_timeout() -> None:
    server = Session("server", CONFIG, now=T0)
    server.receive_data(wire(BindTransmitter(1, system_id="esme", password="wrong")), T0)
    server.reject_bind(CommandStatus.ESME_RINVPASWD, T0 + 2)
    assert written(server) == [BindTransmitterResp(1, CommandStatus.ESME_RINVPASWD)]
    assert server.state is SessionState.OPEN
    assert server.next_deadline() == T0 + 2 + CONFIG.bind_timeout
    assert server.receive_data(wire(BindTransmitter(2)), T0 + 3) == [
        BindRequested(BindTransmitter(2))
    ]


def test_bind_answers_refuse_misuse() -> None:
    server = Session("server", CONFIG)
    with pytest.raises(SessionError, match="no bind awaits"):
        server.accept_bind("SMSC", T0)
    server.receive_data(wire(BIND), T0)
    with pytest.raises(ValueError, match="error status"):
        server.reject_bind(CommandStatus.ESME_ROK, T0)
    server.accept_bind("SMSC", T0)
    with pytest.raises(SessionError, match="no bind awaits"):
        server.reject_bind(CommandStatus.ESME_RBINDFAIL, T0)


def test_a_peer_that_never_binds_is_closed() -> None:
    server = Session("server", CONFIG, now=T0)
    assert server.next_deadline() == T0 + CONFIG.bind_timeout
    assert server.tick(T0 + CONFIG.bind_timeout - 0.001) == []
    assert server.tick(T0 + CONFIG.bind_timeout) == [
        CloseRequested(f"no bind within {CONFIG.bind_timeout} s")
    ]
    assert Session("server", CONFIG).next_deadline() is None  # no opening time, no limit


def test_a_second_bind_is_refused() -> None:
    server = bound_server()
    events = server.receive_data(wire(BindTransmitter(9)), T0)
    assert [type(event) for event in events] == [ProtocolError]
    assert statuses(server) == [(CommandId.BIND_TRANSMITTER_RESP, 9, CommandStatus.ESME_RALYBND)]


# --- what each bind allows -----------------------------------------------------------------


def test_requests_before_or_during_the_bind_get_invalid_bind_status() -> None:
    server = Session("server", CONFIG)
    requests = (SubmitSm(2), DataSm(3), QuerySm(4), DeliverSm(5))
    events = server.receive_data(wire(*requests), T0)
    assert [type(event) for event in events] == [ProtocolError] * 4
    expected = [(r.command_id | 0x80000000, r.sequence_number, 4) for r in requests]
    assert statuses(server) == expected
    server.receive_data(wire(BIND), T0)
    server.receive_data(wire(*requests), T0)  # bind pending: still not bound
    assert statuses(server) == expected


def test_a_receiver_bind_may_not_submit_and_gets_deliveries() -> None:
    server = bound_server(BindReceiver(1))
    server.receive_data(wire(SubmitSm(2)), T0)
    assert statuses(server) == [(CommandId.SUBMIT_SM_RESP, 2, CommandStatus.ESME_RINVBNDSTS)]
    number = server.send_request(a_receipt("m1"), T0)
    assert server.receive_data(wire(DeliverSmResp(number)), T0) != []


def test_a_transmitter_bind_submits_and_gets_no_deliveries() -> None:
    server = bound_server(BindTransmitter(1))
    submit = SubmitSm(2, destination_addr="14155550100", short_message=b"hi")
    assert server.receive_data(wire(submit), T0) == [RequestReceived(submit)]
    server.respond(submit, message_id="m-2")
    assert written(server) == [SubmitSmResp(2, message_id="m-2")]
    with pytest.raises(SessionError, match="cannot send deliver_sm in state BOUND_TX"):
        server.send_request(a_receipt("m-2"), T0)
    with pytest.raises(SessionError, match="cannot send submit_sm"):
        bound_server().send_request(a_submit(), T0)


def test_a_server_sends_deliveries_in_its_own_window() -> None:
    server = bound_server(config=SessionConfig(window=2))
    first = server.send_request(a_receipt("a"), T0)
    server.send_request(DataSm(0, destination_addr="1"), T0)
    assert not server.can_send(T0)
    written(server)
    server.receive_data(wire(DeliverSmResp(first)), T0)
    assert server.can_send(T0)


# --- two sessions back to back -------------------------------------------------------------

Handler = Callable[[Session, Event], None]


def exchange(
    client: Session, server: Session, now: float, on_client: Handler, on_server: Handler
) -> None:
    """Carries bytes both ways, letting each side's application react, until both are quiet."""
    while True:
        to_server, to_client = client.data_to_send(), server.data_to_send()
        if not to_server and not to_client:
            return
        for event in server.receive_data(to_server, now) if to_server else []:
            on_server(server, event)
        for event in client.receive_data(to_client, now) if to_client else []:
            on_client(client, event)


class Smsc:
    """A toy SMSC application: accepts the bind, accepts submits, records what it sees."""

    def __init__(self) -> None:
        self.submitted: list[SubmitSm] = []
        self.events: list[Event] = []

    def __call__(self, server: Session, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, BindRequested):
            server.accept_bind("SMSC", T0)
        elif isinstance(event, RequestReceived) and isinstance(event.pdu, SubmitSm):
            server.respond(event.pdu, message_id=f"msg-{len(self.submitted)}")
            self.submitted.append(event.pdu)


class Esme:
    """A toy ESME application: acknowledges deliveries, records what it sees."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.message_ids: list[str] = []  # from the submit_sm_resps, in order
        self.delivered: list[DeliverSm] = []

    def __call__(self, client: Session, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, ResponseReceived) and isinstance(event.response, SubmitSmResp):
            self.message_ids.append(event.response.message_id)
        elif isinstance(event, RequestReceived) and isinstance(event.pdu, DeliverSm):
            self.delivered.append(event.pdu)
            client.respond(event.pdu)


def test_bind_submit_receipts_unbind_back_to_back() -> None:
    client = Session("client", SessionConfig(window=10))
    server = Session("server", SessionConfig(window=5), now=T0)
    smsc, esme = Smsc(), Esme()

    client.bind("transceiver", "esme", "secret", T0)
    exchange(client, server, T0, esme, smsc)
    assert esme.events == [Bound("transceiver", "SMSC")]
    assert smsc.events == [BindRequested(BindTransceiver(1, system_id="esme", password="secret"))]

    sent = 0
    while sent < 100:
        while sent < 100 and client.can_send(T0):
            client.send_request(a_submit(f"message {sent}".encode()), T0)
            sent += 1
            assert client.outstanding <= 10
        exchange(client, server, T0, esme, smsc)
    message_ids = esme.message_ids
    assert message_ids == [f"msg-{i}" for i in range(100)]
    texts = [pdu.short_message for pdu in smsc.submitted]
    assert texts == [f"message {i}".encode() for i in range(100)]

    receipts = [a_receipt(message_id) for message_id in message_ids]
    while receipts:
        while receipts and server.can_send(T0):
            server.send_request(receipts.pop(0), T0)
        exchange(client, server, T0, esme, smsc)
    assert [pdu.short_message[:7] for pdu in esme.delivered] == [b"id:msg-"] * 100
    acknowledged = [e for e in smsc.events if isinstance(e, ResponseReceived)]
    assert len(acknowledged) == 100
    assert all(e.response.command_status == CommandStatus.ESME_ROK for e in acknowledged)
    assert (client.outstanding, server.outstanding) == (0, 0)

    client.unbind(T0)
    exchange(client, server, T0, esme, smsc)
    assert esme.events[-1] == Unbound()
    assert smsc.events[-1] == Unbound()
    assert (client.state, server.state) == (SessionState.CLOSED, SessionState.CLOSED)


def test_an_idle_link_stays_up_on_enquire_link_back_to_back() -> None:
    client = Session("client", CONFIG)
    server = Session("server", CONFIG, now=T0)
    smsc, esme = Smsc(), Esme()
    client.bind("transmitter", "esme", "secret", T0)
    exchange(client, server, T0, esme, smsc)
    now = T0
    for _ in range(5):
        now = min(d for d in (client.next_deadline(), server.next_deadline()) if d is not None)
        for session, app in ((client, esme), (server, smsc)):
            for event in session.tick(now):
                app(session, event)
        exchange(client, server, now, esme, smsc)
    assert now >= T0 + 2 * CONFIG.enquire_link_interval
    assert client.is_bound
    assert server.is_bound
    assert esme.events == [Bound("transmitter", "SMSC")]


def test_enquire_link_answered_by_a_server_before_bind() -> None:
    server = Session("server", CONFIG)
    assert server.receive_data(wire(EnquireLink(3)), T0) == []
    assert written(server) == [EnquireLinkResp(3)]
