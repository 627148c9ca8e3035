"""Cutting a TCP byte stream into SMPP frames, without parsing them.

Import from :mod:`tidings.connectors.smpp.pdu`.
"""

from __future__ import annotations

import struct

from tidings.connectors.smpp._codes import CommandStatus
from tidings.connectors.smpp._fields import PduError

HEADER_LENGTH = 16
MAX_PDU_LENGTH = 65_536
_LENGTH = struct.Struct(">I")


class FrameSplitter:
    """Cuts a byte stream into whole PDU frames (sans-IO: feed it what the socket reads).

    ``feed`` raises :class:`PduError` (ESME_RINVCMDLEN) when a command_length is below 16
    or above ``MAX_PDU_LENGTH``. Frame boundaries are then lost for good: the caller should
    send a generic_nack if it likes and close the connection; every later ``feed`` raises
    the same error. Work is linear in the bytes fed, however they are chunked.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._needed = 4  # octets to buffer before it is worth looking again
        self._error: PduError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Octets received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Buffer ``data``; return the frames it completed, in order."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._needed:
            return []
        frames: list[bytes] = []
        offset, size = 0, len(buffer)
        self._needed = 4
        while size - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if not HEADER_LENGTH <= length <= MAX_PDU_LENGTH:
                self._error = PduError(
                    CommandStatus.ESME_RINVCMDLEN,
                    f"command_length {length} is outside {HEADER_LENGTH}..{MAX_PDU_LENGTH}",
                )
                raise self._error
            if size - offset < length:
                self._needed = length
                break
            frames.append(bytes(buffer[offset:offset + length]))
            offset += length
        del buffer[:offset]
        return frames
