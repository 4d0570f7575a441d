"""A bounds-checked cursor over received bytes that fails only with DlmsDecodeError."""

from enum import IntEnum
from typing import TypeVar

from dlms.errors import DlmsDecodeError

E = TypeVar("E", bound=IntEnum)

# Four length octets already allow 4 GiB; anything longer is garbage, not a big APDU.
MAX_LENGTH_OCTETS = 4


class Reader:
    """Reads big-endian fields from a buffer, reporting the offset of whatever is wrong."""

    def __init__(self, buffer: bytes, offset: int = 0, end: int | None = None) -> None:
        self._buffer = buffer
        self.offset = offset
        self._end = len(buffer) if end is None else end

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return self._end - self.offset

    def sub(self, length: int, what: str) -> "Reader":
        """A reader over the next `length` bytes (offsets stay absolute); skip them here."""
        if length > self.remaining:
            raise self.fail(f"{what}: needs {length} bytes, {self.remaining} left")
        inner = Reader(self._buffer, self.offset, self.offset + length)
        self.offset += length
        return inner

    def fail(self, reason: str, offset: int | None = None) -> DlmsDecodeError:
        """Build the error for `reason` at `offset` (default: the current position)."""
        return DlmsDecodeError(reason, self.offset if offset is None else offset)

    def take(self, count: int, what: str) -> bytes:
        """Read exactly `count` bytes of `what`."""
        if count > self.remaining:
            raise self.fail(f"{what}: needs {count} bytes, {self.remaining} left")
        start = self.offset
        self.offset += count
        return self._buffer[start : self.offset]

    def peek_u8(self) -> int:
        """The next byte, not consumed (callers check `remaining` first)."""
        if not self.remaining:
            raise self.fail("nothing left to peek at")
        return self._buffer[self.offset]

    def u8(self, what: str) -> int:
        """Read one unsigned byte."""
        return self.take(1, what)[0]

    def uint(self, size: int, what: str) -> int:
        """Read an unsigned big-endian integer of `size` bytes."""
        return int.from_bytes(self.take(size, what), "big")

    def sint(self, size: int, what: str) -> int:
        """Read a two's-complement big-endian integer of `size` bytes."""
        return int.from_bytes(self.take(size, what), "big", signed=True)

    def enum(self, enum_type: type[E], what: str) -> E:
        """Read one byte as a member of `enum_type`; an unknown value is a decode error."""
        start = self.offset
        value = self.u8(what)
        try:
            return enum_type(value)
        except ValueError:
            raise self.fail(f"{what}: unknown value {value}", start) from None

    def boolean(self, what: str) -> bool:
        """Read an A-XDR BOOLEAN (any non-zero byte is true, as X.690 allows)."""
        return self.u8(what) != 0

    def axdr_length(self, what: str) -> int:
        """Read an A-XDR/BER length or element count (callers bound it)."""
        start = self.offset
        first = self.u8(what)
        if first < 0x80:
            length = first
        else:
            octets = first & 0x7F
            if octets == 0 or octets > MAX_LENGTH_OCTETS:
                raise self.fail(f"{what}: {octets} length octets", start)
            length = self.uint(octets, what)
        return length

    def rest(self) -> bytes:
        """Read everything left."""
        return self.take(self.remaining, "rest")

    def expect_end(self, what: str) -> None:
        """Fail if bytes are left over after a complete `what`."""
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected bytes after {what}")


def encode_length(length: int) -> bytes:
    """Encode an A-XDR/BER length: one byte below 128, else 0x80|n and n bytes."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > MAX_LENGTH_OCTETS:
        raise ValueError(f"length {length} too large")
    return bytes([0x80 | len(body)]) + body
