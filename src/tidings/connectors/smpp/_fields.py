"""Wire-level building blocks of the SMPP 3.4 codec: the error type, optional parameters
(TLVs) and the readers/writers of body fields.

Import the public names from :mod:`tidings.connectors.smpp.pdu`; this module exists so
that ``pdu.py`` stays a readable list of PDUs and their layouts.

Every reader takes ``(frame, pos, end)`` and either returns the position after its field
or raises :class:`PduError`; none of them can raise anything else, whatever the bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from tidings.connectors.smpp._codes import CommandStatus, Tag


class PduError(Exception):
    """A PDU that cannot be decoded or encoded.

    ``command_status`` is the code to answer the peer with (in a generic_nack or an error
    response); ``sequence_number`` and ``command_id`` are set when the header was readable.
    """

    def __init__(
        self,
        command_status: int,
        message: str,
        *,
        sequence_number: int | None = None,
        command_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.command_status = command_status
        self.sequence_number = sequence_number
        self.command_id = command_id

    def with_header(self, sequence_number: int, command_id: int) -> PduError:
        """The same error, labelled with the header of the PDU it came from."""
        return PduError(
            self.command_status, str(self),
            sequence_number=sequence_number, command_id=command_id,
        )


@dataclass(frozen=True, slots=True)
class OptionalParams:
    """The TLVs of a PDU: the ones we act on as typed fields, any other kept raw in ``other``.

    ``other`` holds ``(tag, value)`` pairs in wire order so that unknown TLVs round-trip; it
    must not contain a tag modelled by a field (encoding refuses that).
    """

    message_payload: bytes | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: bytes | None = None  # network type (1 octet) + error code (2 octets)
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    user_message_reference: int | None = None
    sc_interface_version: int | None = None
    other: tuple[tuple[int, bytes], ...] = ()


NO_OPTIONAL_PARAMS = OptionalParams()

_TLV_HEADER = struct.Struct(">HH")
_MAX_TLV_VALUE = 0xFFFF
_RECEIPTED_MESSAGE_ID_MAX = 64  # characters; 65 octets with the NUL


def _invalid_value(name: str, reason: str) -> PduError:
    return PduError(CommandStatus.ESME_RINVOPTPARAMVAL, f"{name}: {reason}")


def _encode_octets(name: str, value: object, size: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise _invalid_value(name, "must be bytes")
    if size is not None and len(value) != size:
        raise _invalid_value(name, f"must be exactly {size} octets")
    return value


def _encode_uint(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise _invalid_value(name, f"must be an integer that fits in {size} octet(s)")
    return value.to_bytes(size, "big")


def _encode_message_id(name: str, value: object) -> bytes:
    if not isinstance(value, str) or not value.isascii() or "\0" in value:
        raise _invalid_value(name, "must be ASCII text without NUL")
    if len(value) > _RECEIPTED_MESSAGE_ID_MAX:
        raise _invalid_value(name, f"longer than {_RECEIPTED_MESSAGE_ID_MAX} characters")
    return value.encode("ascii") + b"\0"


def _check_length(name: str, raw: bytes, size: int) -> None:
    if len(raw) != size:
        raise PduError(CommandStatus.ESME_RINVPARLEN, f"{name}: {len(raw)} octets, not {size}")


def _decode_uint(name: str, raw: bytes, size: int) -> int:
    _check_length(name, raw, size)
    return int.from_bytes(raw, "big")


def _decode_network_error(name: str, raw: bytes) -> bytes:
    _check_length(name, raw, 3)
    return raw


def _decode_message_id(name: str, raw: bytes) -> str:
    # Tolerant on purpose: several SMSCs send this C-Octet String without its NUL.
    text = raw[:-1] if raw.endswith(b"\0") else raw
    if b"\0" in text or not text.isascii() or len(text) > _RECEIPTED_MESSAGE_ID_MAX:
        raise _invalid_value(name, "not an ASCII message id of at most 64 characters")
    return text.decode("ascii")


@dataclass(frozen=True, slots=True)
class _TlvSpec:
    name: str
    tag: int
    encode: Callable[[str, object], bytes]
    decode: Callable[[str, bytes], object]


def _uint_spec(name: str, tag: int, size: int) -> _TlvSpec:
    return _TlvSpec(
        name, tag,
        lambda field, value: _encode_uint(field, value, size),
        lambda field, raw: _decode_uint(field, raw, size),
    )


# Encoding order of the modelled TLVs: the field order of OptionalParams.
_MODELLED_TLVS: tuple[_TlvSpec, ...] = (
    _TlvSpec("message_payload", Tag.MESSAGE_PAYLOAD, _encode_octets, lambda _, raw: raw),
    _TlvSpec(
        "receipted_message_id", Tag.RECEIPTED_MESSAGE_ID, _encode_message_id, _decode_message_id,
    ),
    _uint_spec("message_state", Tag.MESSAGE_STATE, 1),
    _TlvSpec(
        "network_error_code", Tag.NETWORK_ERROR_CODE,
        lambda field, value: _encode_octets(field, value, 3), _decode_network_error,
    ),
    _uint_spec("sar_msg_ref_num", Tag.SAR_MSG_REF_NUM, 2),
    _uint_spec("sar_total_segments", Tag.SAR_TOTAL_SEGMENTS, 1),
    _uint_spec("sar_segment_seqnum", Tag.SAR_SEGMENT_SEQNUM, 1),
    _uint_spec("user_message_reference", Tag.USER_MESSAGE_REFERENCE, 2),
    _uint_spec("sc_interface_version", Tag.SC_INTERFACE_VERSION, 1),
)
_SPEC_BY_TAG: dict[int, _TlvSpec] = {spec.tag: spec for spec in _MODELLED_TLVS}


def encode_optional(params: OptionalParams) -> bytes:
    """The TLV octets of ``params``: modelled fields in a fixed order, then ``other``."""
    if params is NO_OPTIONAL_PARAMS:
        return b""
    parts: list[bytes] = []
    for spec in _MODELLED_TLVS:
        value = getattr(params, spec.name)
        if value is not None:
            parts.append(_pack_tlv(spec.name, spec.tag, spec.encode(spec.name, value)))
    for item in params.other:
        parts.append(_pack_other(item))
    return b"".join(parts)


def _pack_tlv(name: str, tag: int, value: bytes) -> bytes:
    if len(value) > _MAX_TLV_VALUE:
        raise _invalid_value(name, f"value longer than {_MAX_TLV_VALUE} octets")
    return _TLV_HEADER.pack(tag, len(value)) + value


def _pack_other(item: object) -> bytes:
    if not isinstance(item, tuple) or len(item) != 2:
        raise _invalid_value("other", "items must be (tag, value) pairs")
    tag, value = item
    if not isinstance(tag, int) or not 0 <= tag <= 0xFFFF:
        raise _invalid_value("other", f"tag {tag!r} is not a 16-bit integer")
    if tag in _SPEC_BY_TAG:
        raise _invalid_value("other", f"tag 0x{tag:04X} is modelled; set its field instead")
    return _pack_tlv(f"TLV 0x{tag:04X}", tag, _encode_octets("other", value))


def decode_optional(frame: bytes, pos: int, end: int) -> OptionalParams:
    """Parse ``frame[pos:end]`` as a TLV stream."""
    if pos == end:
        return NO_OPTIONAL_PARAMS
    modelled: dict[str, Any] = {}
    other: list[tuple[int, bytes]] = []
    while pos < end:
        if end - pos < _TLV_HEADER.size:
            raise PduError(CommandStatus.ESME_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = _TLV_HEADER.unpack_from(frame, pos)
        start, pos = pos + _TLV_HEADER.size, pos + _TLV_HEADER.size + length
        if pos > end:
            raise PduError(
                CommandStatus.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X} runs past the PDU end",
            )
        spec = _SPEC_BY_TAG.get(tag)
        if spec is None:
            other.append((tag, frame[start:pos]))
        elif spec.name in modelled:
            raise PduError(CommandStatus.ESME_RINVOPTPARSTREAM, f"TLV {spec.name} repeated")
        else:
            modelled[spec.name] = spec.decode(spec.name, frame[start:pos])
    return OptionalParams(**modelled, other=tuple(other))


class BodyField(Protocol):
    """One step of a PDU body layout: reads values into a list, writes octets from a PDU."""

    def read(self, frame: bytes, pos: int, end: int, values: list[object]) -> int:
        """Append the decoded value(s) to ``values``; return the position after the field."""

    def write(self, pdu: object, out: list[bytes]) -> None:
        """Append the encoded field, taken from ``pdu``, to ``out``."""


class CString:
    """A C-Octet String: ASCII text then NUL, at most ``max_octets`` octets with the NUL.

    Strict ASCII everywhere, passwords included: the spec says these fields are ASCII, and
    refusing 8-bit octets is simpler and safer than guessing a code page.
    """

    __slots__ = ("error_status", "max_octets", "name")

    def __init__(
        self, name: str, max_octets: int, error_status: int = CommandStatus.ESME_RINVPARLEN,
    ) -> None:
        self.name = name
        self.max_octets = max_octets
        self.error_status = error_status

    def read(self, frame: bytes, pos: int, end: int, values: list[object]) -> int:
        nul = frame.find(b"\0", pos, min(end, pos + self.max_octets))
        if nul < 0:
            raise PduError(
                self.error_status, f"{self.name}: no NUL within {self.max_octets} octets",
            )
        raw = frame[pos:nul]
        if not raw.isascii():
            raise PduError(self.error_status, f"{self.name}: not ASCII")
        values.append(raw.decode("ascii"))
        return nul + 1

    def write(self, pdu: object, out: list[bytes]) -> None:
        value = getattr(pdu, self.name)
        if not isinstance(value, str) or not value.isascii() or "\0" in value:
            raise PduError(self.error_status, f"{self.name}: must be ASCII text without NUL")
        if len(value) >= self.max_octets:
            raise PduError(
                self.error_status, f"{self.name}: longer than {self.max_octets - 1} characters",
            )
        out.append(value.encode("ascii") + b"\0")


class Octets:
    """A run of consecutive one-octet integer fields, read and written with one Struct."""

    __slots__ = ("layout", "names")

    def __init__(self, *names: str) -> None:
        self.names = names
        self.layout = struct.Struct(">" + "B" * len(names))

    def read(self, frame: bytes, pos: int, end: int, values: list[object]) -> int:
        if end - pos < self.layout.size:
            raise PduError(CommandStatus.ESME_RINVCMDLEN, f"body ends before {self.names[0]}")
        values.extend(self.layout.unpack_from(frame, pos))
        return pos + self.layout.size

    def write(self, pdu: object, out: list[bytes]) -> None:
        numbers = [getattr(pdu, name) for name in self.names]
        try:
            out.append(self.layout.pack(*numbers))
        except struct.error:
            bad = next(
                name for name, number in zip(self.names, numbers, strict=True)
                if not isinstance(number, int) or not 0 <= number <= 0xFF
            )
            raise PduError(
                CommandStatus.ESME_RINVPARLEN, f"{bad}: must be an integer 0..255",
            ) from None


_get_short_message = attrgetter("short_message")
_get_optional = attrgetter("optional")


class ShortMessage:
    """``sm_length`` (one octet) and that many octets of ``short_message``."""

    __slots__ = ()
    max_octets = 254

    def read(self, frame: bytes, pos: int, end: int, values: list[object]) -> int:
        if pos >= end:
            raise PduError(CommandStatus.ESME_RINVCMDLEN, "body ends before sm_length")
        start = pos + 1
        stop = start + frame[pos]
        if stop > end:
            raise PduError(CommandStatus.ESME_RINVMSGLEN, "sm_length runs past the PDU end")
        values.append(frame[start:stop])
        return stop

    def write(self, pdu: object, out: list[bytes]) -> None:
        value = _get_short_message(pdu)
        if not isinstance(value, bytes):
            raise PduError(CommandStatus.ESME_RINVMSGLEN, "short_message: must be bytes")
        if len(value) > self.max_octets:
            raise PduError(
                CommandStatus.ESME_RINVMSGLEN,
                f"short_message: {len(value)} octets, at most {self.max_octets}; "
                "use message_payload or split the text",
            )
        out.append(bytes((len(value),)) + value)


class Tlvs:
    """The optional parameters: everything from here to the end of the PDU."""

    __slots__ = ()

    def read(self, frame: bytes, pos: int, end: int, values: list[object]) -> int:
        values.append(decode_optional(frame, pos, end))
        return end

    def write(self, pdu: object, out: list[bytes]) -> None:
        params = _get_optional(pdu)
        if not isinstance(params, OptionalParams):
            raise _invalid_value("optional", "must be an OptionalParams")
        out.append(encode_optional(params))
