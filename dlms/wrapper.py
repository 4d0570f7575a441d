"""IEC 62056-9-7 TCP wrapper: the 8-byte header and asyncio frame reading and writing."""

import asyncio
from dataclasses import dataclass
from typing import Self

from dlms.errors import FrameError

WRAPPER_VERSION = 0x0001
HEADER_SIZE = 8
DLMS_PORT = 4059  # IANA "dlms/cosem"
# The length field is 16 bits, so no frame can carry more than this.
WRAPPER_MAX_APDU_SIZE = 0xFFFF

# wPorts (SAPs). Client side: the association a client asks for; server side: the
# logical device it talks to.
PUBLIC_CLIENT = 16
METER_READER_CLIENT = 32
UTILITY_SETTINGS_CLIENT = 48
MANAGEMENT_LOGICAL_DEVICE = 1


def _check_wport(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {value} outside 0-65535")


@dataclass(frozen=True, slots=True)
class WrapperHeader:
    """version, source wPort, destination wPort, APDU length: four big-endian uint16."""

    source_wport: int
    destination_wport: int
    length: int
    version: int = WRAPPER_VERSION

    def __post_init__(self) -> None:
        _check_wport("source wPort", self.source_wport)
        _check_wport("destination wPort", self.destination_wport)
        _check_wport("length", self.length)
        _check_wport("version", self.version)

    def to_bytes(self) -> bytes:
        """The 8 header bytes."""
        return b"".join(
            field.to_bytes(2, "big")
            for field in (self.version, self.source_wport, self.destination_wport, self.length)
        )

    @classmethod
    def from_bytes(cls, raw: bytes, *, max_apdu_size: int) -> Self:
        """Decode and vet a header before its body is read, so a bad one costs nothing."""
        if len(raw) != HEADER_SIZE:
            raise FrameError(f"wrapper header is {len(raw)} bytes, not {HEADER_SIZE}")
        version, source, destination, length = (
            int.from_bytes(raw[i : i + 2], "big") for i in range(0, HEADER_SIZE, 2)
        )
        if version != WRAPPER_VERSION:
            raise FrameError(f"wrapper version {version:#06x}, expected {WRAPPER_VERSION:#06x}")
        if length > max_apdu_size:
            raise FrameError(f"APDU of {length} bytes exceeds the bound of {max_apdu_size}")
        return cls(source, destination, length, version)


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One wrapped APDU with its addressing."""

    source_wport: int
    destination_wport: int
    apdu: bytes

    def to_bytes(self) -> bytes:
        """Header and APDU, ready for the socket."""
        header = WrapperHeader(self.source_wport, self.destination_wport, len(self.apdu))
        return header.to_bytes() + self.apdu


async def read_frame(reader: asyncio.StreamReader, *, max_apdu_size: int) -> WrapperFrame | None:
    """Read one frame; None when the peer closed cleanly between frames.

    Raises FrameError for a refused header or a stream that ends inside a frame. The
    bound is the caller's: the max PDU size it negotiated, not the wrapper's 64 KiB.
    """
    try:
        raw_header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError(f"stream ended after {len(exc.partial)} header bytes") from exc
    header = WrapperHeader.from_bytes(raw_header, max_apdu_size=max_apdu_size)
    try:
        apdu = await reader.readexactly(header.length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(
            f"stream ended after {len(exc.partial)} of {header.length} APDU bytes"
        ) from exc
    return WrapperFrame(header.source_wport, header.destination_wport, apdu)


async def write_frame(writer: asyncio.StreamWriter, frame: WrapperFrame) -> None:
    """Write one frame and wait for the transport to take it (back-pressure)."""
    writer.write(frame.to_bytes())
    await writer.drain()
