"""The SMPP 3.4 PDU codec: spec byte vectors, round trips, and bad input of every kind."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.connectors.smpp.pdu import (
    MAX_PDU_LENGTH,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FrameSplitter,
    GenericNack,
    OptionalParams,
    Pdu,
    PduError,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
    decode,
    encode,
    is_response,
    response_to,
)

ALL_PDU_CLASSES: list[type[Pdu]] = [
    BindTransmitter, BindReceiver, BindTransceiver, BindTransmitterResp, BindReceiverResp,
    BindTransceiverResp, SubmitSm, DeliverSm, SubmitSmResp, DeliverSmResp, DataSm,
    DataSmResp, QuerySm, QuerySmResp, EnquireLink, EnquireLinkResp, Unbind, UnbindResp,
    GenericNack,
]
REQUEST_RESPONSE = [
    (BindTransmitter, BindTransmitterResp), (BindReceiver, BindReceiverResp),
    (BindTransceiver, BindTransceiverResp), (SubmitSm, SubmitSmResp),
    (DeliverSm, DeliverSmResp), (DataSm, DataSmResp), (QuerySm, QuerySmResp),
    (EnquireLink, EnquireLinkResp), (Unbind, UnbindResp),
]
MODELLED_TAGS = {
    Tag.MESSAGE_PAYLOAD, Tag.RECEIPTED_MESSAGE_ID, Tag.MESSAGE_STATE, Tag.NETWORK_ERROR_CODE,
    Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM,
    Tag.USER_MESSAGE_REFERENCE, Tag.SC_INTERFACE_VERSION,
}

# Characters allowed in a C-Octet string field, by field name (the spec's max minus NUL).
MAX_CHARS = {
    "system_id": 15, "password": 8, "system_type": 12, "address_range": 40,
    "service_type": 5, "source_addr": 20, "destination_addr": 20,
    "schedule_delivery_time": 16, "validity_period": 16, "message_id": 64, "final_date": 16,
}
DATA_SM_ADDRESS_CHARS = 64


def untyped(value: object) -> Any:
    """A value of the wrong type, passed on purpose."""
    return value


def frame(hex_text: str) -> bytes:
    return bytes.fromhex("".join(hex_text.split()))


# --- strategies --------------------------------------------------------------------------


def ascii_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=max_size)


uint8 = st.integers(0, 0xFF)
uint16 = st.integers(0, 0xFFFF)
unmodelled_tags = st.integers(0, 0xFFFF).filter(lambda tag: tag not in MODELLED_TAGS)
optional_params = st.builds(
    OptionalParams,
    message_payload=st.none() | st.binary(max_size=300),
    receipted_message_id=st.none() | ascii_text(64),
    message_state=st.none() | uint8,
    network_error_code=st.none() | st.binary(min_size=3, max_size=3),
    sar_msg_ref_num=st.none() | uint16,
    sar_total_segments=st.none() | uint8,
    sar_segment_seqnum=st.none() | uint8,
    user_message_reference=st.none() | uint16,
    sc_interface_version=st.none() | uint8,
    other=st.lists(st.tuples(unmodelled_tags, st.binary(max_size=40)), max_size=4).map(tuple),
)


def field_strategy(cls: type[Pdu], field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    if field.type == "str":
        is_long_address = cls is DataSm and field.name.endswith("addr")
        return ascii_text(DATA_SM_ADDRESS_CHARS if is_long_address else MAX_CHARS[field.name])
    if field.type == "int":
        return uint8
    if field.type == "bytes":
        return st.binary(max_size=254)
    assert field.type == "OptionalParams", field.type
    return optional_params


def pdus(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    body = {
        field.name: field_strategy(cls, field)
        for field in dataclasses.fields(cls)
        if field.name not in ("sequence_number", "command_status")
    }
    return st.builds(
        cls,
        sequence_number=st.integers(0, 0x7FFFFFFF),
        command_status=st.integers(0, 0xFFFFFFFF),
        **body,
    )


any_pdu = st.sampled_from(ALL_PDU_CLASSES).flatmap(pdus)


# --- byte vectors built by hand from the spec --------------------------------------------


def test_enquire_link_vector() -> None:
    wire = frame("00000010 00000015 00000000 00000001")
    assert encode(EnquireLink(1)) == wire
    assert decode(wire) == EnquireLink(1)


def test_generic_nack_vector() -> None:
    wire = frame("00000010 80000000 00000003 00000007")
    nack = GenericNack(7, CommandStatus.ESME_RINVCMDID)
    assert encode(nack) == wire
    assert decode(wire) == nack


def test_bind_transceiver_vector() -> None:
    wire = frame(
        "0000002a 00000009 00000000 00000001"
        "736d7070636c69656e743100"  # system_id "smppclient1"
        "70617373776f726400"  # password "password"
        "00"  # system_type ""
        "34 00 00"  # interface_version 3.4, addr_ton, addr_npi
        "00"  # address_range ""
    )
    bind = BindTransceiver(1, system_id="smppclient1", password="password")
    assert encode(bind) == wire
    assert decode(wire) == bind


def test_bind_transceiver_resp_vector_with_sc_interface_version() -> None:
    wire = frame("0000001a 80000009 00000000 00000001 534d534300 0210 0001 34")
    resp = BindTransceiverResp(1, system_id="SMSC", optional=OptionalParams(
        sc_interface_version=0x34))
    assert encode(resp) == wire
    assert decode(wire) == resp


SUBMIT_SM_WITH_TLVS = frame(
    "0000004c 00000004 00000000 0000002a"
    "00"  # service_type ""
    "05 00 546964696e677300"  # source: alphanumeric, "Tidings"
    "01 01 34343737303039303031323300"  # destination: international ISDN, "447700900123"
    "00 00 00"  # esm_class, protocol_id, priority_flag
    "00 00"  # schedule_delivery_time "", validity_period ""
    "01 00 00 00"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    "02 4869"  # sm_length 2, "Hi"
    "020c 0002 1234"  # sar_msg_ref_num 0x1234
    "020e 0001 02"  # sar_total_segments 2
    "020f 0001 01"  # sar_segment_seqnum 1
    "0204 0002 0007"  # user_message_reference 7
)


def test_submit_sm_with_tlvs_vector() -> None:
    submit = SubmitSm(
        0x2A, source_addr_ton=5, source_addr="Tidings", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="447700900123", registered_delivery=1, short_message=b"Hi",
        optional=OptionalParams(
            sar_msg_ref_num=0x1234, sar_total_segments=2, sar_segment_seqnum=1,
            user_message_reference=7,
        ),
    )
    assert encode(submit) == SUBMIT_SM_WITH_TLVS
    assert decode(SUBMIT_SM_WITH_TLVS) == submit


RECEIPT_TEXT = (
    b"id:abc123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
    b"stat:DELIVRD err:000 Text:Hi"
)
DELIVER_SM_RECEIPT = (
    frame(
        f"{16 + 36 + len(RECEIPT_TEXT) + 16:08x} 00000005 00000000 00000003"
        "00"  # service_type ""
        "01 01 34343737303039303031323300"  # source "447700900123"
        "05 00 546964696e677300"  # destination "Tidings"
        "04 00 00"  # esm_class 0x04: SMSC delivery receipt
        "00 00 00 00 00 00"  # times, registered_delivery, replace, data_coding, default id
        f"{len(RECEIPT_TEXT):02x}"
    )
    + RECEIPT_TEXT
    + frame("001e 0007 61626331323300 0427 0001 02")  # receipted_message_id, state DELIVERED
)


def test_deliver_sm_receipt_vector() -> None:
    receipt = DeliverSm(
        3, source_addr_ton=1, source_addr_npi=1, source_addr="447700900123",
        dest_addr_ton=5, destination_addr="Tidings", esm_class=0x04,
        short_message=RECEIPT_TEXT,
        optional=OptionalParams(receipted_message_id="abc123", message_state=2),
    )
    assert encode(receipt) == DELIVER_SM_RECEIPT
    assert decode(DELIVER_SM_RECEIPT) == receipt


def test_unknown_tlvs_round_trip_in_wire_order() -> None:
    wire = frame("0000001c 80000004 00000000 00000009 414200 1402 0001 ff 1400 0000")
    resp = decode(wire)
    assert resp == SubmitSmResp(9, message_id="AB", optional=OptionalParams(
        other=((0x1402, b"\xff"), (0x1400, b""))))
    assert encode(resp) == wire


# --- tolerated deviations ----------------------------------------------------------------


@pytest.mark.parametrize("cls", [SubmitSmResp, DeliverSmResp, DataSmResp, BindTransmitterResp,
                                 BindReceiverResp, BindTransceiverResp, QuerySmResp])
@pytest.mark.parametrize("status", [0, CommandStatus.ESME_RTHROTTLED])
def test_response_without_body_decodes_to_defaults(cls: type[Pdu], status: int) -> None:
    wire = frame(f"00000010 {cls.command_id:08x} {status:08x} 00000005")
    assert decode(wire) == cls(5, status)


def test_error_response_with_default_body_is_sent_without_body() -> None:
    assert encode(SubmitSmResp(5, CommandStatus.ESME_RTHROTTLED)) == frame(
        "00000010 80000004 00000058 00000005")
    assert encode(SubmitSmResp(5, 0)) == frame("00000011 80000004 00000000 00000005 00")
    with_id = SubmitSmResp(5, CommandStatus.ESME_RSUBMITFAIL, message_id="x")
    assert decode(encode(with_id)) == with_id


def test_receipted_message_id_without_nul_is_accepted() -> None:
    wire = frame("00000018 80000103 00000000 00000002 00 001e 0003 616263")
    assert decode(wire) == DataSmResp(2, optional=OptionalParams(receipted_message_id="abc"))


def test_responses_echo_any_32_bit_sequence_number() -> None:
    nack = GenericNack(0xFFFFFFFF, CommandStatus.ESME_RINVCMDLEN)
    assert decode(encode(nack)) == nack


# --- decode errors -----------------------------------------------------------------------


def decode_error(wire: bytes) -> PduError:
    with pytest.raises(PduError) as caught:
        decode(wire)
    return caught.value


def test_short_frame() -> None:
    error = decode_error(b"\x00\x00\x00\x10")
    assert error.command_status == CommandStatus.ESME_RINVCMDLEN
    assert error.sequence_number is None
    assert error.command_id is None


def test_length_mismatch_keeps_header_fields() -> None:
    error = decode_error(frame("00000011 00000015 00000000 00000004"))
    assert error.command_status == CommandStatus.ESME_RINVCMDLEN
    assert (error.sequence_number, error.command_id) == (4, CommandId.ENQUIRE_LINK)


def test_unknown_command_id() -> None:
    error = decode_error(frame("00000010 00000021 00000000 00000008"))  # submit_multi
    assert error.command_status == CommandStatus.ESME_RINVCMDID
    assert (error.sequence_number, error.command_id) == (8, 0x21)


def test_bytes_after_a_header_only_pdu() -> None:
    error = decode_error(frame("00000011 00000015 00000000 00000004 00"))
    assert error.command_status == CommandStatus.ESME_RINVCMDLEN


def with_source_addr(source: bytes) -> bytes:
    body = b"\x00" + b"\x01\x01" + source + frame("01 01 3100 000000 00 00 00000000 00")
    return (16 + len(body)).to_bytes(4, "big") + frame("00000004 00000000 0000000b") + body


@pytest.mark.parametrize("source", [b"1" * 21 + b"\x00", b"caf\xe9\x00"], ids=["long", "latin1"])
def test_bad_source_addr_gets_its_own_status(source: bytes) -> None:
    error = decode_error(with_source_addr(source))
    assert error.command_status == CommandStatus.ESME_RINVSRCADR
    assert error.sequence_number == 0x0B


def test_longest_source_addr_is_fine() -> None:
    submit = decode(with_source_addr(b"1" * 20 + b"\x00"))
    assert isinstance(submit, SubmitSm)
    assert submit.source_addr == "1" * 20


def test_missing_nul_at_end_of_body() -> None:
    error = decode_error(frame("00000013 80000004 00000000 00000001 414243"))
    assert error.command_status == CommandStatus.ESME_RINVMSGID


def test_sm_length_past_the_end() -> None:
    wire = bytearray(encode(SubmitSm(1, short_message=b"abc")))
    wire[-4] = 4  # sm_length claims one more octet than there is
    assert decode_error(bytes(wire)).command_status == CommandStatus.ESME_RINVMSGLEN


def test_body_ends_before_the_integer_fields() -> None:
    error = decode_error(frame("00000013 00000002 00000000 00000001 000000"))
    assert error.command_status == CommandStatus.ESME_RINVCMDLEN


def test_body_ends_before_sm_length() -> None:
    wire = encode(SubmitSm(1))[:-1]  # drop sm_length, keep command_length consistent
    wire = len(wire).to_bytes(4, "big") + wire[4:]
    assert decode_error(wire).command_status == CommandStatus.ESME_RINVCMDLEN


def tlv_frame(tlvs: str) -> bytes:
    body = frame("00" + tlvs)
    return (16 + len(body)).to_bytes(4, "big") + frame("80000004 00000000 00000001") + body


@pytest.mark.parametrize(("tlvs", "status"), [
    ("0204", CommandStatus.ESME_RINVOPTPARSTREAM),  # header cut short
    ("0204 0002 00", CommandStatus.ESME_RINVOPTPARSTREAM),  # value cut short
    ("0427 0002 0001", CommandStatus.ESME_RINVPARLEN),  # message_state is one octet
    ("0423 0002 0301", CommandStatus.ESME_RINVPARLEN),  # network_error_code is three
    ("0427 0001 02 0427 0001 02", CommandStatus.ESME_RINVOPTPARSTREAM),  # repeated
    ("001e 0004 61006200", CommandStatus.ESME_RINVOPTPARAMVAL),  # NUL inside the id
    ("001e 0002 e900", CommandStatus.ESME_RINVOPTPARAMVAL),  # not ASCII
])
def test_bad_tlvs(tlvs: str, status: int) -> None:
    assert decode_error(tlv_frame(tlvs)).command_status == status


# --- encode errors -----------------------------------------------------------------------


@pytest.mark.parametrize(("pdu", "status"), [
    (BindTransmitter(1, system_id="x" * 16), CommandStatus.ESME_RINVSYSID),
    (BindTransmitter(1, password="p\u00e9"), CommandStatus.ESME_RINVPASWD),
    (SubmitSm(1, destination_addr="1\x002"), CommandStatus.ESME_RINVDSTADR),
    (SubmitSm(1, source_addr_ton=256), CommandStatus.ESME_RINVPARLEN),
    (SubmitSm(1, data_coding=-1), CommandStatus.ESME_RINVPARLEN),
    (SubmitSm(1, short_message=b"x" * 255), CommandStatus.ESME_RINVMSGLEN),
    (SubmitSm(1, optional=OptionalParams(network_error_code=b"\x03\x00")),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (SubmitSm(1, optional=OptionalParams(sar_total_segments=256)),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (SubmitSm(1, optional=OptionalParams(other=((Tag.MESSAGE_PAYLOAD, b"x"),))),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (DataSm(1, optional=OptionalParams(message_payload=b"x" * 65_535)),
     CommandStatus.ESME_RINVCMDLEN),
    (SubmitSm(1, short_message=untyped("text")), CommandStatus.ESME_RINVMSGLEN),
    (SubmitSm(1, service_type=untyped(None)), CommandStatus.ESME_RINVSERTYP),
    (SubmitSm(1, optional=untyped(None)), CommandStatus.ESME_RINVOPTPARAMVAL),
    (SubmitSm(1, optional=OptionalParams(message_payload=untyped("text"))),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (SubmitSm(1, optional=OptionalParams(message_payload=b"x" * 65_536)),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (DeliverSm(1, optional=OptionalParams(receipted_message_id="\u00e9")),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (DeliverSm(1, optional=OptionalParams(receipted_message_id="x" * 65)),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (DeliverSm(1, optional=OptionalParams(other=untyped(((1, 2, 3),)))),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (DeliverSm(1, optional=OptionalParams(other=((0x10000, b""),))),
     CommandStatus.ESME_RINVOPTPARAMVAL),
    (EnquireLink(0x80000000), CommandStatus.ESME_RSYSERR),
    (EnquireLink(-1), CommandStatus.ESME_RSYSERR),
    (EnquireLinkResp(1, 1 << 32), CommandStatus.ESME_RSYSERR),
])
def test_unencodable_values(pdu: Pdu, status: int) -> None:
    with pytest.raises(PduError) as caught:
        encode(pdu)
    assert caught.value.command_status == status
    assert caught.value.command_id == pdu.command_id


def test_the_bare_base_class_is_not_encodable() -> None:
    with pytest.raises(PduError, match="not an encodable PDU"):
        encode(Pdu(1))


def test_a_frame_at_the_size_limit_encodes() -> None:
    payload = b"x" * (MAX_PDU_LENGTH - 16 - 10 - 4)  # header, mandatory body, TLV header
    wire = encode(DataSm(1, optional=OptionalParams(message_payload=payload)))
    assert len(wire) == MAX_PDU_LENGTH


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize(("request_class", "response_class"), REQUEST_RESPONSE)
def test_response_to_each_request(request_class: type[Pdu], response_class: type[Pdu]) -> None:
    response = response_to(request_class(77), CommandStatus.ESME_RTHROTTLED)
    assert type(response) is response_class
    assert (response.sequence_number, response.command_status) == (77, 0x58)
    assert response.command_id == request_class.command_id | 0x80000000
    assert is_response(response.command_id)
    assert not is_response(request_class.command_id)


def test_response_to_sets_body_fields() -> None:
    assert response_to(SubmitSm(3), message_id="m-1") == SubmitSmResp(3, message_id="m-1")


@pytest.mark.parametrize("pdu", [SubmitSmResp(1), GenericNack(1), EnquireLinkResp(1)])
def test_responses_have_no_response(pdu: Pdu) -> None:
    with pytest.raises(ValueError, match="no response"):
        response_to(pdu)


def test_generic_nack_counts_as_a_response() -> None:
    assert is_response(CommandId.GENERIC_NACK)


# --- properties --------------------------------------------------------------------------


@given(any_pdu)
def test_round_trip(pdu: Pdu) -> None:
    wire = encode(pdu)
    assert int.from_bytes(wire[:4], "big") == len(wire)
    assert decode(wire) == pdu


def decode_or_error(wire: bytes) -> Pdu | PduError:
    """What decode makes of ``wire``; any exception but PduError fails the test."""
    try:
        return decode(wire)
    except PduError as error:
        return error


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_pdu_error(data: bytes) -> None:
    decode_or_error(data)


@given(st.sampled_from(list(CommandId)), st.binary(max_size=200))
def test_random_bodies_raise_only_pdu_error(command_id: CommandId, body: bytes) -> None:
    wire = (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big") + bytes(8) + body
    outcome = decode_or_error(wire)
    if isinstance(outcome, PduError):
        assert outcome.command_id == command_id
    else:
        assert outcome.command_id == command_id


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    wire = bytearray(encode(draw(any_pdu)))
    mutation = draw(st.sampled_from(["truncate", "flip", "length", "extend"]))
    if mutation == "truncate":
        del wire[draw(st.integers(0, len(wire) - 1)):]
        if draw(st.booleans()) and len(wire) >= 4:  # keep command_length consistent
            wire[:4] = len(wire).to_bytes(4, "big")
    elif mutation == "flip":
        for _ in range(draw(st.integers(1, 4))):
            wire[draw(st.integers(0, len(wire) - 1))] ^= draw(st.integers(1, 255))
    elif mutation == "length":
        wire[:4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    else:
        wire += draw(st.binary(min_size=1, max_size=20))
        wire[:4] = len(wire).to_bytes(4, "big")
    return bytes(wire)


@given(mutated_frames())
def test_mutated_frames_raise_only_pdu_error(wire: bytes) -> None:
    decode_or_error(wire)


# --- framing -----------------------------------------------------------------------------


@st.composite
def chunked_streams(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    frames = [encode(pdu) for pdu in draw(st.lists(any_pdu, max_size=8))]
    stream = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    edges = [0, *cuts, len(stream)]
    return frames, [stream[start:stop] for start, stop in itertools.pairwise(edges)]


@given(chunked_streams())
def test_splitter_yields_exactly_the_frames(case: tuple[list[bytes], list[bytes]]) -> None:
    frames, chunks = case
    splitter = FrameSplitter()
    received = [frame for chunk in chunks for frame in splitter.feed(chunk)]
    assert received == frames
    assert splitter.buffered_bytes == 0


def split_or_error(splitter: FrameSplitter, chunk: bytes) -> list[bytes] | PduError:
    try:
        return splitter.feed(chunk)
    except PduError as error:
        return error


@given(st.lists(st.binary(max_size=64), max_size=10))
def test_splitter_raises_only_pdu_error(chunks: list[bytes]) -> None:
    splitter = FrameSplitter()
    for chunk in chunks:
        outcome = split_or_error(splitter, chunk)
        if isinstance(outcome, PduError):
            assert outcome.command_status == CommandStatus.ESME_RINVCMDLEN
            break
        assert all(len(piece) == int.from_bytes(piece[:4], "big") for piece in outcome)


def test_splitter_stays_broken_after_a_bad_length() -> None:
    splitter = FrameSplitter()
    with pytest.raises(PduError):
        splitter.feed(frame("0000000f 00000015"))
    with pytest.raises(PduError):
        splitter.feed(encode(EnquireLink(1)))


def test_splitter_refuses_oversized_frames_from_their_first_four_octets() -> None:
    with pytest.raises(PduError):
        FrameSplitter().feed((MAX_PDU_LENGTH + 1).to_bytes(4, "big"))


def test_splitter_handles_a_big_frame_fed_byte_by_byte() -> None:
    wire = encode(DataSm(1, optional=OptionalParams(message_payload=b"x" * 60_000)))
    splitter = FrameSplitter()
    received = [
        frame for index in range(len(wire)) for frame in splitter.feed(wire[index:index + 1])
    ]
    assert received == [wire]


def test_splitter_handles_many_frames_in_one_chunk() -> None:
    frames = [encode(EnquireLink(number)) for number in range(1, 5001)]
    assert FrameSplitter().feed(b"".join(frames)) == frames
