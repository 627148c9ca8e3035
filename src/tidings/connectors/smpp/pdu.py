"""The SMPP 3.4 PDU codec: frozen dataclasses for the PDUs an ESME and an SMSC exchange,
``encode``/``decode`` between them and wire frames, and a ``FrameSplitter`` for streams.

Sans-IO and strict: decoding any byte string either returns a PDU or raises
:class:`PduError` carrying the ``command_status`` to answer with; C-Octet strings must be
ASCII within the spec's maximum length. Tolerated on purpose, because real SMSCs do it:
a response whose body is missing (error responses usually have none), a
``receipted_message_id`` TLV without its NUL, and TLVs on submit_sm_resp/deliver_sm_resp
(SMPP 5.0 allows them; some carriers send price or network TLVs there).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from tidings.connectors.smpp._codes import CommandId, CommandStatus, MessageState, Tag
from tidings.connectors.smpp._fields import (
    NO_OPTIONAL_PARAMS,
    BodyField,
    CString,
    Octets,
    OptionalParams,
    PduError,
    ShortMessage,
    Tlvs,
)
from tidings.connectors.smpp._framing import HEADER_LENGTH, MAX_PDU_LENGTH, FrameSplitter

__all__ = [
    "HEADER_LENGTH", "MAX_PDU_LENGTH", "BindReceiver", "BindReceiverResp", "BindTransceiver",
    "BindTransceiverResp", "BindTransmitter", "BindTransmitterResp", "CommandId",
    "CommandStatus", "DataSm", "DataSmResp", "DeliverSm", "DeliverSmResp", "EnquireLink",
    "EnquireLinkResp", "FrameSplitter", "GenericNack", "MessageState", "OptionalParams", "Pdu",
    "PduError", "QuerySm", "QuerySmResp", "SubmitSm", "SubmitSmResp", "Tag", "Unbind",
    "UnbindResp", "decode", "encode", "is_response", "response_to",
]

_MAX_REQUEST_SEQUENCE = 0x7FFFFFFF
_MAX_UINT32 = 0xFFFFFFFF
_RESPONSE_BIT = 0x80000000
_HEADER = struct.Struct(">IIII")


@dataclass(frozen=True, slots=True)
class Pdu:
    """The header every PDU carries; ``command_length`` is derived when encoding."""

    sequence_number: int
    command_status: int = 0
    command_id: ClassVar[CommandId]


# --- PDU bodies shared by several commands -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _BindBody(Pdu):
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class _BindRespBody(Pdu):
    system_id: str = ""
    optional: OptionalParams = NO_OPTIONAL_PARAMS


@dataclass(frozen=True, slots=True)
class _ShortMessageBody(Pdu):
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    optional: OptionalParams = NO_OPTIONAL_PARAMS


@dataclass(frozen=True, slots=True)
class _MessageIdRespBody(Pdu):
    message_id: str = ""
    optional: OptionalParams = NO_OPTIONAL_PARAMS


# --- the PDUs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindTransmitter(_BindBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True)
class BindReceiver(_BindBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True)
class BindTransceiver(_BindBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True)
class BindTransmitterResp(_BindRespBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True)
class BindReceiverResp(_BindRespBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True)
class BindTransceiverResp(_BindRespBody):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True)
class SubmitSm(_ShortMessageBody):
    """``short_message`` is at most 254 octets; longer text goes in ``message_payload``."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True)
class DeliverSm(_ShortMessageBody):
    """A mobile-originated message, or a delivery receipt when ``esm_class`` says so."""

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True)
class SubmitSmResp(_MessageIdRespBody):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP


@dataclass(frozen=True, slots=True)
class DeliverSmResp(_MessageIdRespBody):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP


@dataclass(frozen=True, slots=True)
class DataSm(Pdu):
    command_id: ClassVar[CommandId] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    optional: OptionalParams = NO_OPTIONAL_PARAMS


@dataclass(frozen=True, slots=True)
class DataSmResp(_MessageIdRespBody):
    command_id: ClassVar[CommandId] = CommandId.DATA_SM_RESP


@dataclass(frozen=True, slots=True)
class QuerySm(Pdu):
    command_id: ClassVar[CommandId] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class EnquireLink(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True)
class Unbind(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND


@dataclass(frozen=True, slots=True)
class UnbindResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True)
class GenericNack(Pdu):
    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


# --- body layouts (SMPP 3.4 section 4; max lengths include the NUL) ----------------------

_BIND_LAYOUT: tuple[BodyField, ...] = (
    CString("system_id", 16, CommandStatus.ESME_RINVSYSID),
    CString("password", 9, CommandStatus.ESME_RINVPASWD),
    CString("system_type", 13, CommandStatus.ESME_RINVSYSTYP),
    Octets("interface_version", "addr_ton", "addr_npi"),
    CString("address_range", 41),
)
_BIND_RESP_LAYOUT: tuple[BodyField, ...] = (
    CString("system_id", 16, CommandStatus.ESME_RINVSYSID), Tlvs(),
)
_SHORT_MESSAGE_LAYOUT: tuple[BodyField, ...] = (
    CString("service_type", 6, CommandStatus.ESME_RINVSERTYP),
    Octets("source_addr_ton", "source_addr_npi"),
    CString("source_addr", 21, CommandStatus.ESME_RINVSRCADR),
    Octets("dest_addr_ton", "dest_addr_npi"),
    CString("destination_addr", 21, CommandStatus.ESME_RINVDSTADR),
    Octets("esm_class", "protocol_id", "priority_flag"),
    CString("schedule_delivery_time", 17, CommandStatus.ESME_RINVSCHED),
    CString("validity_period", 17, CommandStatus.ESME_RINVEXPIRY),
    Octets("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id"),
    ShortMessage(),
    Tlvs(),
)
_MESSAGE_ID_RESP_LAYOUT: tuple[BodyField, ...] = (
    CString("message_id", 65, CommandStatus.ESME_RINVMSGID), Tlvs(),
)
_DATA_SM_LAYOUT: tuple[BodyField, ...] = (
    CString("service_type", 6, CommandStatus.ESME_RINVSERTYP),
    Octets("source_addr_ton", "source_addr_npi"),
    CString("source_addr", 65, CommandStatus.ESME_RINVSRCADR),
    Octets("dest_addr_ton", "dest_addr_npi"),
    CString("destination_addr", 65, CommandStatus.ESME_RINVDSTADR),
    Octets("esm_class", "registered_delivery", "data_coding"),
    Tlvs(),
)
_QUERY_SM_LAYOUT: tuple[BodyField, ...] = (
    CString("message_id", 65, CommandStatus.ESME_RINVMSGID),
    Octets("source_addr_ton", "source_addr_npi"),
    CString("source_addr", 21, CommandStatus.ESME_RINVSRCADR),
)
_QUERY_SM_RESP_LAYOUT: tuple[BodyField, ...] = (
    CString("message_id", 65, CommandStatus.ESME_RINVMSGID),
    CString("final_date", 17),
    Octets("message_state", "error_code"),
)


@dataclass(frozen=True, slots=True)
class _Codec:
    pdu_class: type[Pdu]
    layout: tuple[BodyField, ...]
    # Responses may travel without a body; SMPP 3.4 omits it on error (e.g. 4.4.2).
    body_optional: bool

    @property
    def build(self) -> Callable[..., Pdu]:
        return self.pdu_class


def _codecs() -> dict[type[Pdu], _Codec]:
    layouts: dict[type[Pdu], tuple[BodyField, ...]] = {
        BindTransmitter: _BIND_LAYOUT, BindReceiver: _BIND_LAYOUT,
        BindTransceiver: _BIND_LAYOUT, BindTransmitterResp: _BIND_RESP_LAYOUT,
        BindReceiverResp: _BIND_RESP_LAYOUT, BindTransceiverResp: _BIND_RESP_LAYOUT,
        SubmitSm: _SHORT_MESSAGE_LAYOUT, DeliverSm: _SHORT_MESSAGE_LAYOUT,
        SubmitSmResp: _MESSAGE_ID_RESP_LAYOUT, DeliverSmResp: _MESSAGE_ID_RESP_LAYOUT,
        DataSm: _DATA_SM_LAYOUT, DataSmResp: _MESSAGE_ID_RESP_LAYOUT,
        QuerySm: _QUERY_SM_LAYOUT, QuerySmResp: _QUERY_SM_RESP_LAYOUT,
        EnquireLink: (), EnquireLinkResp: (), Unbind: (), UnbindResp: (), GenericNack: (),
    }
    return {
        cls: _Codec(cls, layout, bool(layout) and is_response(cls.command_id))
        for cls, layout in layouts.items()
    }


def is_response(command_id: int) -> bool:
    """Whether ``command_id`` names a response; generic_nack counts as one."""
    return bool(command_id & _RESPONSE_BIT)


_CODEC_BY_CLASS = _codecs()
_CODEC_BY_ID: dict[int, _Codec] = {
    cls.command_id: codec for cls, codec in _CODEC_BY_CLASS.items()
}


# --- encoding and decoding ---------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """The wire frame of ``pdu``: the 16-octet header, then the body and its TLVs.

    Raises :class:`PduError` for values that cannot be encoded: a string too long for its
    field or not ASCII, an integer out of range, a ``short_message`` over 254 octets, a
    frame over ``MAX_PDU_LENGTH``. Requests need a sequence number in 0..0x7FFFFFFF;
    responses echo whatever 32-bit number the peer sent. An error response whose body
    fields are all defaults is sent without a body, as SMPP 3.4 specifies.
    """
    codec = _CODEC_BY_CLASS.get(type(pdu))
    if codec is None:
        raise PduError(CommandStatus.ESME_RSYSERR, f"not an encodable PDU: {type(pdu).__name__}")
    command_id = codec.pdu_class.command_id
    sequence_number, command_status = pdu.sequence_number, pdu.command_status
    _check_header(command_id, sequence_number, command_status)
    try:
        body = _encode_body(codec, pdu)
    except PduError as error:
        raise error.with_header(sequence_number, command_id) from None
    length = HEADER_LENGTH + len(body)
    if length > MAX_PDU_LENGTH:
        raise PduError(
            CommandStatus.ESME_RINVCMDLEN, f"PDU of {length} octets is over {MAX_PDU_LENGTH}",
            sequence_number=sequence_number, command_id=command_id,
        )
    return _HEADER.pack(length, command_id, command_status, sequence_number) + body


def _check_header(command_id: int, sequence_number: object, command_status: object) -> None:
    highest = _MAX_UINT32 if is_response(command_id) else _MAX_REQUEST_SEQUENCE
    if not isinstance(sequence_number, int) or not 0 <= sequence_number <= highest:
        raise PduError(
            CommandStatus.ESME_RSYSERR,
            f"sequence_number {sequence_number!r} is outside 0..{highest:#x}",
            command_id=command_id,
        )
    if not isinstance(command_status, int) or not 0 <= command_status <= _MAX_UINT32:
        raise PduError(
            CommandStatus.ESME_RSYSERR,
            f"command_status {command_status!r} is not a 32-bit integer",
            sequence_number=sequence_number, command_id=command_id,
        )


def _encode_body(codec: _Codec, pdu: Pdu) -> bytes:
    if codec.body_optional and pdu.command_status and _has_default_body(codec, pdu):
        return b""
    parts: list[bytes] = []
    for field in codec.layout:
        field.write(pdu, parts)
    return b"".join(parts)


def _has_default_body(codec: _Codec, pdu: Pdu) -> bool:
    return pdu == codec.build(pdu.sequence_number, pdu.command_status)


def decode(frame: bytes) -> Pdu:
    """The PDU in ``frame``, one complete frame including its header.

    Raises :class:`PduError` (never another exception) for anything malformed: a length
    that disagrees with the frame (ESME_RINVCMDLEN), an unknown command (ESME_RINVCMDID),
    a bad C-Octet string (the field's own code, else ESME_RINVPARLEN), a bad TLV stream
    (ESME_RINVOPTPARSTREAM), and so on. Sequence number and command id are attached to the
    error whenever the header could be read.
    """
    if len(frame) < HEADER_LENGTH:
        raise PduError(
            CommandStatus.ESME_RINVCMDLEN, f"frame of {len(frame)} octets is shorter than 16",
        )
    length, command_id, command_status, sequence_number = _HEADER.unpack_from(frame)
    if length != len(frame):
        raise PduError(
            CommandStatus.ESME_RINVCMDLEN,
            f"command_length {length} but the frame has {len(frame)} octets",
            sequence_number=sequence_number, command_id=command_id,
        )
    codec = _CODEC_BY_ID.get(command_id)
    if codec is None:
        raise PduError(
            CommandStatus.ESME_RINVCMDID, f"unknown command_id {command_id:#010x}",
            sequence_number=sequence_number, command_id=command_id,
        )
    try:
        return _decode_body(codec, frame, sequence_number, command_status)
    except PduError as error:
        raise error.with_header(sequence_number, command_id) from None


def _decode_body(codec: _Codec, frame: bytes, sequence_number: int, command_status: int) -> Pdu:
    end = len(frame)
    if end == HEADER_LENGTH and codec.body_optional:
        return codec.build(sequence_number, command_status)
    values: list[object] = []
    pos = HEADER_LENGTH
    for field in codec.layout:
        pos = field.read(frame, pos, end, values)
    if pos != end:
        raise PduError(
            CommandStatus.ESME_RINVCMDLEN, f"{end - pos} unexpected octets after the body",
        )
    return codec.build(sequence_number, command_status, *values)


# --- responses ---------------------------------------------------------------------------

_RESPONSE_CLASS: dict[type[Pdu], type[Pdu]] = {
    BindTransmitter: BindTransmitterResp, BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp, SubmitSm: SubmitSmResp, DeliverSm: DeliverSmResp,
    DataSm: DataSmResp, QuerySm: QuerySmResp, EnquireLink: EnquireLinkResp,
    Unbind: UnbindResp,
}


def response_to(request: Pdu, command_status: int = 0, **fields: Any) -> Pdu:
    """The response to ``request``, with its sequence number and the given body fields.

    Raises ``ValueError`` for a PDU that has no response (a response or generic_nack).
    """
    response_class = _RESPONSE_CLASS.get(type(request))
    if response_class is None:
        raise ValueError(f"{type(request).__name__} has no response PDU")
    build: Callable[..., Pdu] = response_class
    return build(request.sequence_number, command_status, **fields)
