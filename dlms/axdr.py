"""A-XDR encoding of COSEM Data: one frozen type per DLMS data type, defensive decoding."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from dlms._reader import Reader, encode_length
from dlms.cosem_time import DATE_TIME_SIZE, CosemDateTime
from dlms.errors import DlmsDecodeError


class DataTag(IntEnum):
    """The Data CHOICE tags this codec speaks."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    DATE_TIME = 25


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds on what a decoder accepts, since the bytes come from the radio."""

    max_depth: int = 16
    max_elements: int = 65_535


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True, slots=True)
class NullData:
    """null-data."""

    TAG: ClassVar[DataTag] = DataTag.NULL_DATA

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)


@dataclass(frozen=True, slots=True)
class Boolean:
    """boolean."""

    value: bool
    TAG: ClassVar[DataTag] = DataTag.BOOLEAN

    def _write(self, out: bytearray) -> None:
        out += bytes((self.TAG, 1 if self.value else 0))


@dataclass(frozen=True, slots=True)
class _FixedInteger:
    """An integer type of fixed width; subclasses set tag, width and signedness."""

    value: int
    TAG: ClassVar[DataTag]
    SIZE: ClassVar[int]
    SIGNED: ClassVar[bool]

    def __post_init__(self) -> None:
        bits = self.SIZE * 8
        if self.SIGNED:
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            low, high = 0, (1 << bits) - 1
        if not low <= self.value <= high:
            raise ValueError(f"{type(self).__name__} {self.value} outside {low}..{high}")

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)
        out += self.value.to_bytes(self.SIZE, "big", signed=self.SIGNED)


@dataclass(frozen=True, slots=True)
class Integer(_FixedInteger):
    """integer: signed 8 bits."""

    TAG = DataTag.INTEGER
    SIZE = 1
    SIGNED = True


@dataclass(frozen=True, slots=True)
class Long(_FixedInteger):
    """long: signed 16 bits."""

    TAG = DataTag.LONG
    SIZE = 2
    SIGNED = True


@dataclass(frozen=True, slots=True)
class DoubleLong(_FixedInteger):
    """double-long: signed 32 bits."""

    TAG = DataTag.DOUBLE_LONG
    SIZE = 4
    SIGNED = True


@dataclass(frozen=True, slots=True)
class Long64(_FixedInteger):
    """long64: signed 64 bits."""

    TAG = DataTag.LONG64
    SIZE = 8
    SIGNED = True


@dataclass(frozen=True, slots=True)
class Unsigned(_FixedInteger):
    """unsigned: 8 bits."""

    TAG = DataTag.UNSIGNED
    SIZE = 1
    SIGNED = False


@dataclass(frozen=True, slots=True)
class LongUnsigned(_FixedInteger):
    """long-unsigned: 16 bits."""

    TAG = DataTag.LONG_UNSIGNED
    SIZE = 2
    SIGNED = False


@dataclass(frozen=True, slots=True)
class DoubleLongUnsigned(_FixedInteger):
    """double-long-unsigned: 32 bits."""

    TAG = DataTag.DOUBLE_LONG_UNSIGNED
    SIZE = 4
    SIGNED = False


@dataclass(frozen=True, slots=True)
class Long64Unsigned(_FixedInteger):
    """long64-unsigned: 64 bits."""

    TAG = DataTag.LONG64_UNSIGNED
    SIZE = 8
    SIGNED = False


@dataclass(frozen=True, slots=True)
class Enumerated(_FixedInteger):
    """enum: 8 bits, meaning given by the attribute (e.g. IC 70 control_state)."""

    TAG = DataTag.ENUM
    SIZE = 1
    SIGNED = False


@dataclass(frozen=True, slots=True)
class BitString:
    """bit-string: `bit_count` bits, first bit in the most significant bit of `value[0]`."""

    value: bytes
    bit_count: int
    TAG: ClassVar[DataTag] = DataTag.BIT_STRING

    def __post_init__(self) -> None:
        if self.bit_count < 0 or len(self.value) != (self.bit_count + 7) // 8:
            raise ValueError(f"{len(self.value)} bytes cannot hold exactly {self.bit_count} bits")

    @classmethod
    def from_bits(cls, bits: Sequence[bool]) -> "BitString":
        """Build from booleans, first bit first."""
        packed = bytearray((len(bits) + 7) // 8)
        for index, bit in enumerate(bits):
            if bit:
                packed[index // 8] |= 0x80 >> (index % 8)
        return cls(bytes(packed), len(bits))

    @property
    def bits(self) -> tuple[bool, ...]:
        """The bits, first bit first."""
        return tuple(bool(self.value[i // 8] & (0x80 >> (i % 8))) for i in range(self.bit_count))

    def _write(self, out: bytearray) -> None:
        # The length of a bit-string counts bits, not octets (A-XDR, as for BER BIT STRING).
        out.append(self.TAG)
        out += encode_length(self.bit_count)
        out += self.value


@dataclass(frozen=True, slots=True)
class OctetString:
    """octet-string (also the usual carrier of a 12-byte date-time and of OBIS codes)."""

    value: bytes
    TAG: ClassVar[DataTag] = DataTag.OCTET_STRING

    @classmethod
    def of_date_time(cls, value: CosemDateTime) -> "OctetString":
        """The octet-string(12) form in which IS 15959 meters carry a date-time."""
        return cls(value.to_bytes())

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)
        out += encode_length(len(self.value))
        out += self.value


@dataclass(frozen=True, slots=True)
class VisibleString:
    """visible-string: ASCII text such as a meter serial number."""

    value: str
    TAG: ClassVar[DataTag] = DataTag.VISIBLE_STRING

    def __post_init__(self) -> None:
        if not self.value.isascii():
            raise ValueError(f"visible-string must be ASCII: {self.value!r}")

    def _write(self, out: bytearray) -> None:
        raw = self.value.encode("ascii")
        out.append(self.TAG)
        out += encode_length(len(raw))
        out += raw


@dataclass(frozen=True, slots=True)
class DateTime:
    """date-time (tag 25): the 12 bytes without a length, as some servers send it."""

    value: CosemDateTime
    TAG: ClassVar[DataTag] = DataTag.DATE_TIME

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)
        out += self.value.to_bytes()


@dataclass(frozen=True, slots=True)
class Structure:
    """structure: an ordered, heterogeneous sequence (a profile row, a capture object)."""

    items: "tuple[Data, ...]"
    TAG: ClassVar[DataTag] = DataTag.STRUCTURE

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)
        out += encode_length(len(self.items))
        for item in self.items:
            item._write(out)


@dataclass(frozen=True, slots=True)
class Array:
    """array: a sequence of elements of one type (a profile buffer)."""

    items: "tuple[Data, ...]"
    TAG: ClassVar[DataTag] = DataTag.ARRAY

    def _write(self, out: bytearray) -> None:
        out.append(self.TAG)
        out += encode_length(len(self.items))
        for item in self.items:
            item._write(out)


Data = (
    NullData
    | Boolean
    | BitString
    | DoubleLong
    | DoubleLongUnsigned
    | OctetString
    | VisibleString
    | Integer
    | Long
    | Unsigned
    | LongUnsigned
    | Long64
    | Long64Unsigned
    | Enumerated
    | DateTime
    | Structure
    | Array
)

FixedInteger = (
    Integer
    | Long
    | DoubleLong
    | Long64
    | Unsigned
    | LongUnsigned
    | DoubleLongUnsigned
    | Long64Unsigned
    | Enumerated
)

_FIXED_INTEGERS: dict[int, type[FixedInteger]] = {
    cls.TAG: cls
    for cls in (
        Integer,
        Long,
        DoubleLong,
        Long64,
        Unsigned,
        LongUnsigned,
        DoubleLongUnsigned,
        Long64Unsigned,
        Enumerated,
    )
}


def encode_data(value: Data) -> bytes:
    """A-XDR bytes of one Data value, tag first."""
    out = bytearray()
    value._write(out)
    return bytes(out)


def decode_data(buffer: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Data:
    """Decode exactly one Data value filling `buffer`."""
    reader = Reader(buffer)
    value = read_data(reader, limits)
    reader.expect_end("data")
    return value


def read_data(reader: Reader, limits: DecodeLimits = DEFAULT_LIMITS, depth: int = 0) -> Data:
    """Decode one Data value at the reader's position (for APDUs that embed Data)."""
    start = reader.offset
    tag = reader.u8("data tag")
    fixed = _FIXED_INTEGERS.get(tag)
    if fixed is not None:
        read = reader.sint if fixed.SIGNED else reader.uint
        return fixed(read(fixed.SIZE, fixed.__name__))
    if tag == DataTag.NULL_DATA:
        return NullData()
    if tag == DataTag.BOOLEAN:
        return Boolean(reader.boolean("boolean"))
    if tag == DataTag.OCTET_STRING:
        return OctetString(reader.take(reader.axdr_length("octet-string length"), "octet-string"))
    if tag == DataTag.VISIBLE_STRING:
        raw = reader.take(reader.axdr_length("visible-string length"), "visible-string")
        if not raw.isascii():
            raise reader.fail("visible-string is not ASCII", start)
        return VisibleString(raw.decode("ascii"))
    if tag == DataTag.BIT_STRING:
        bit_count = reader.axdr_length("bit-string length")
        return BitString(reader.take((bit_count + 7) // 8, "bit-string"), bit_count)
    if tag == DataTag.DATE_TIME:
        return DateTime(CosemDateTime.from_bytes(reader.take(DATE_TIME_SIZE, "date-time")))
    if tag in (DataTag.STRUCTURE, DataTag.ARRAY):
        return _read_sequence(reader, limits, depth, tag)
    raise reader.fail(f"unsupported data tag {tag}", start)


def _read_sequence(reader: Reader, limits: DecodeLimits, depth: int, tag: int) -> Data:
    start = reader.offset - 1
    if depth >= limits.max_depth:
        raise reader.fail(f"data nested deeper than {limits.max_depth}", start)
    count = reader.axdr_length("element count")
    # Every element takes at least one byte, so a count beyond the bytes left is a lie
    # that would otherwise make us loop (or allocate) for nothing.
    if count > limits.max_elements or count > reader.remaining:
        raise reader.fail(f"element count {count} beyond bound or buffer", start)
    items = tuple(read_data(reader, limits, depth + 1) for _ in range(count))
    return Structure(items) if tag == DataTag.STRUCTURE else Array(items)


def as_date_time(value: Data) -> CosemDateTime:
    """Read a date-time carried as octet-string(12) or as date-time (tag 25)."""
    if isinstance(value, DateTime):
        return value.value
    if isinstance(value, OctetString) and len(value.value) == DATE_TIME_SIZE:
        return CosemDateTime.from_bytes(value.value)
    raise DlmsDecodeError(f"{type(value).__name__} is not a date-time", 0)
