"""xDLMS GET, SET and ACTION requests and responses (normal, and GET with data blocks)."""

from dataclasses import dataclass
from enum import IntEnum

from dlms._reader import Reader, encode_length
from dlms.axdr import DEFAULT_LIMITS, Data, DecodeLimits, encode_data, read_data
from dlms.enums import ActionResult, DataAccessResult
from dlms.errors import ActionRefused, DataAccessRefused
from dlms.obis import OBIS_SIZE, Obis
from dlms.selective import SelectiveAccess


class Tag(IntEnum):
    """APDU tags of the services here."""

    GET_REQUEST = 0xC0
    SET_REQUEST = 0xC1
    ACTION_REQUEST = 0xC3
    GET_RESPONSE = 0xC4
    SET_RESPONSE = 0xC5
    ACTION_RESPONSE = 0xC7


NORMAL = 1
GET_REQUEST_NEXT = 2
GET_RESPONSE_WITH_DATABLOCK = 2
_DATA = 0  # Get-Data-Result / DataBlock-G result CHOICE: data
_ACCESS_RESULT = 1  # ... or data-access-result


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """Invoke-Id-And-Priority: id 0-15, confirmed service class, high priority."""

    invoke_id: int = 1
    confirmed: bool = True
    high_priority: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.invoke_id <= 15:
            raise ValueError(f"invoke id {self.invoke_id} outside 0-15")

    def to_byte(self) -> int:
        """The octet (reserved bits 4-5 zero)."""
        return self.invoke_id | self.confirmed << 6 | self.high_priority << 7

    @classmethod
    def from_byte(cls, octet: int) -> "InvokeIdAndPriority":
        """Decode; reserved bits are ignored."""
        return cls(octet & 0x0F, bool(octet & 0x40), bool(octet & 0x80))


def _check_ids(class_id: int, member_id: int) -> None:
    if not 0 <= class_id <= 0xFFFF:
        raise ValueError(f"class id {class_id} outside 0-65535")
    if not -128 <= member_id <= 127:
        raise ValueError(f"attribute or method id {member_id} outside Integer8")


@dataclass(frozen=True, slots=True)
class AttributeDescriptor:
    """Cosem-Attribute-Descriptor: class id, logical name, attribute id."""

    class_id: int
    instance: Obis
    attribute_id: int

    def __post_init__(self) -> None:
        _check_ids(self.class_id, self.attribute_id)

    def to_bytes(self) -> bytes:
        """2 + 6 + 1 bytes; ids are Integer8 (negative ones are manufacturer-specific)."""
        return (
            self.class_id.to_bytes(2, "big")
            + self.instance.to_bytes()
            + self.attribute_id.to_bytes(1, "big", signed=True)
        )


@dataclass(frozen=True, slots=True)
class MethodDescriptor:
    """Cosem-Method-Descriptor: class id, logical name, method id."""

    class_id: int
    instance: Obis
    method_id: int

    def __post_init__(self) -> None:
        _check_ids(self.class_id, self.method_id)

    def to_bytes(self) -> bytes:
        """2 + 6 + 1 bytes."""
        return (
            self.class_id.to_bytes(2, "big")
            + self.instance.to_bytes()
            + self.method_id.to_bytes(1, "big", signed=True)
        )


def _access_bytes(access: SelectiveAccess | None) -> bytes:
    if access is None:
        return b"\x00"
    return bytes((0x01, access.selector)) + encode_data(access.parameters)


def _result_bytes(result: "Data | DataAccessResult") -> bytes:
    if isinstance(result, DataAccessResult):
        return bytes((_ACCESS_RESULT, result))
    return bytes((_DATA,)) + encode_data(result)


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    """Read one attribute, optionally with selective access."""

    attribute: AttributeDescriptor
    access: SelectiveAccess | None = None
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C0 01 ..."""
        head = bytes((Tag.GET_REQUEST, NORMAL, self.invoke.to_byte()))
        return head + self.attribute.to_bytes() + _access_bytes(self.access)


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """Ask for the block after `block_number` of a long GET."""

    block_number: int
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C0 02 ..."""
        head = bytes((Tag.GET_REQUEST, GET_REQUEST_NEXT, self.invoke.to_byte()))
        return head + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """The attribute's value, or why it could not be read."""

    result: "Data | DataAccessResult"
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C4 01 ..."""
        head = bytes((Tag.GET_RESPONSE, NORMAL, self.invoke.to_byte()))
        return head + _result_bytes(self.result)

    def value(self) -> Data:
        """The data, or DataAccessRefused."""
        if isinstance(self.result, DataAccessResult):
            raise DataAccessRefused(self.result)
        return self.result


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock:
    """One block of a long GET: raw bytes of the encoded Data, or an access result."""

    last_block: bool
    block_number: int
    raw_data: bytes | DataAccessResult
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C4 02 ... last-block, block-number, then raw-data OCTET STRING or the result."""
        out = bytearray((Tag.GET_RESPONSE, GET_RESPONSE_WITH_DATABLOCK, self.invoke.to_byte()))
        out.append(1 if self.last_block else 0)
        out += self.block_number.to_bytes(4, "big")
        if isinstance(self.raw_data, DataAccessResult):
            out += bytes((_ACCESS_RESULT, self.raw_data))
        else:
            out += bytes((_DATA,)) + encode_length(len(self.raw_data)) + self.raw_data
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    """Write one attribute."""

    attribute: AttributeDescriptor
    value: Data
    access: SelectiveAccess | None = None
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C1 01 ..."""
        head = bytes((Tag.SET_REQUEST, NORMAL, self.invoke.to_byte()))
        return (
            head + self.attribute.to_bytes() + _access_bytes(self.access) + encode_data(self.value)
        )


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    """The result of a write."""

    result: DataAccessResult
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C5 01 ..."""
        return bytes((Tag.SET_RESPONSE, NORMAL, self.invoke.to_byte(), self.result))

    def raise_for_result(self) -> None:
        """DataAccessRefused unless the write succeeded."""
        if self.result is not DataAccessResult.SUCCESS:
            raise DataAccessRefused(self.result)


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    """Invoke one method, with parameters or without."""

    method: MethodDescriptor
    parameters: Data | None = None
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C3 01 ..."""
        head = bytes((Tag.ACTION_REQUEST, NORMAL, self.invoke.to_byte())) + self.method.to_bytes()
        if self.parameters is None:
            return head + b"\x00"
        return head + b"\x01" + encode_data(self.parameters)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    """The result of a method, with its return data when it has any."""

    result: ActionResult
    return_data: "Data | DataAccessResult | None" = None
    invoke: InvokeIdAndPriority = InvokeIdAndPriority()

    def to_bytes(self) -> bytes:
        """C7 01 ..."""
        head = bytes((Tag.ACTION_RESPONSE, NORMAL, self.invoke.to_byte(), self.result))
        if self.return_data is None:
            return head + b"\x00"
        return head + b"\x01" + _result_bytes(self.return_data)

    def raise_for_result(self) -> None:
        """ActionRefused unless the method succeeded."""
        if self.result is not ActionResult.SUCCESS:
            raise ActionRefused(self.result)


XdlmsApdu = (
    GetRequestNormal
    | GetRequestNext
    | GetResponseNormal
    | GetResponseWithDatablock
    | SetRequestNormal
    | SetResponseNormal
    | ActionRequestNormal
    | ActionResponseNormal
)


def decode_xdlms(buffer: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> XdlmsApdu:
    """Decode one GET/SET/ACTION APDU; anything else is a DlmsDecodeError."""
    reader = Reader(buffer)
    tag = reader.u8("APDU tag")
    choice = reader.u8("APDU choice")
    invoke = InvokeIdAndPriority.from_byte(reader.u8("invoke-id-and-priority"))
    apdu = _read_body(reader, tag, choice, invoke, limits)
    reader.expect_end("APDU")
    return apdu


def _read_body(
    reader: Reader, tag: int, choice: int, invoke: InvokeIdAndPriority, limits: DecodeLimits
) -> XdlmsApdu:
    if tag == Tag.GET_REQUEST and choice == NORMAL:
        return GetRequestNormal(_read_attribute(reader), _read_access(reader, limits), invoke)
    if tag == Tag.GET_REQUEST and choice == GET_REQUEST_NEXT:
        return GetRequestNext(reader.uint(4, "block number"), invoke)
    if tag == Tag.GET_RESPONSE and choice == NORMAL:
        return GetResponseNormal(_read_result(reader, limits), invoke)
    if tag == Tag.GET_RESPONSE and choice == GET_RESPONSE_WITH_DATABLOCK:
        last_block = reader.boolean("last-block")
        block_number = reader.uint(4, "block number")
        raw: bytes | DataAccessResult
        if _read_result_choice(reader) == _DATA:
            raw = reader.take(reader.axdr_length("raw-data length"), "raw-data")
        else:
            raw = reader.enum(DataAccessResult, "data-access-result")
        return GetResponseWithDatablock(last_block, block_number, raw, invoke)
    if tag == Tag.SET_REQUEST and choice == NORMAL:
        attribute = _read_attribute(reader)
        access = _read_access(reader, limits)
        return SetRequestNormal(attribute, read_data(reader, limits), access, invoke)
    if tag == Tag.SET_RESPONSE and choice == NORMAL:
        return SetResponseNormal(reader.enum(DataAccessResult, "data-access-result"), invoke)
    if tag == Tag.ACTION_REQUEST and choice == NORMAL:
        method = _read_method(reader)
        parameters = read_data(reader, limits) if reader.boolean("parameters present") else None
        return ActionRequestNormal(method, parameters, invoke)
    if tag == Tag.ACTION_RESPONSE and choice == NORMAL:
        result = reader.enum(ActionResult, "action-result")
        return_data = None
        if reader.boolean("return-parameters present"):
            return_data = _read_result(reader, limits)
        return ActionResponseNormal(result, return_data, invoke)
    raise reader.fail(f"unsupported APDU {tag:#04x} choice {choice}", 0)


def _read_descriptor(reader: Reader) -> tuple[int, Obis, int]:
    class_id = reader.uint(2, "class id")
    start = reader.offset
    instance = Obis.from_bytes(reader.take(OBIS_SIZE, "logical name"), start)
    return class_id, instance, reader.sint(1, "attribute or method id")


def _read_attribute(reader: Reader) -> AttributeDescriptor:
    return AttributeDescriptor(*_read_descriptor(reader))


def _read_method(reader: Reader) -> MethodDescriptor:
    return MethodDescriptor(*_read_descriptor(reader))


def _read_access(reader: Reader, limits: DecodeLimits) -> SelectiveAccess | None:
    if not reader.boolean("access-selection present"):
        return None
    selector = reader.u8("access selector")
    return SelectiveAccess(selector, read_data(reader, limits))


def _read_result_choice(reader: Reader) -> int:
    start = reader.offset
    choice = reader.u8("result choice")
    if choice not in (_DATA, _ACCESS_RESULT):
        raise reader.fail(f"result choice {choice} is neither data nor access result", start)
    return choice


def _read_result(reader: Reader, limits: DecodeLimits) -> "Data | DataAccessResult":
    if _read_result_choice(reader) == _DATA:
        return read_data(reader, limits)
    return reader.enum(DataAccessResult, "data-access-result")
