"""xDLMS InitiateRequest/InitiateResponse carried in AARQ/AARE, and the conformance block."""

from dataclasses import dataclass
from enum import IntFlag

from dlms._reader import Reader

INITIATE_REQUEST_TAG = 0x01
INITIATE_RESPONSE_TAG = 0x08
DLMS_VERSION = 6
# [APPLICATION 31] IMPLICIT BIT STRING (SIZE(24)), BER inside A-XDR: tag 5F 1F, length 4,
# no unused bits.
_CONFORMANCE_HEADER = bytes((0x5F, 0x1F, 0x04, 0x00))
# vaa-name of a logical-name association.
LN_VAA_NAME = 0x0007


class Conformance(IntFlag):
    """The 24-bit conformance block; bit n of the ASN.1 counts from the most significant."""

    GENERAL_PROTECTION = 1 << (23 - 1)
    GENERAL_BLOCK_TRANSFER = 1 << (23 - 2)
    DELTA_VALUE_ENCODING = 1 << (23 - 6)
    ATTRIBUTE0_SUPPORTED_WITH_SET = 1 << (23 - 8)
    PRIORITY_MGMT_SUPPORTED = 1 << (23 - 9)
    ATTRIBUTE0_SUPPORTED_WITH_GET = 1 << (23 - 10)
    BLOCK_TRANSFER_WITH_GET_OR_READ = 1 << (23 - 11)
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = 1 << (23 - 12)
    BLOCK_TRANSFER_WITH_ACTION = 1 << (23 - 13)
    MULTIPLE_REFERENCES = 1 << (23 - 14)
    DATA_NOTIFICATION = 1 << (23 - 16)
    ACCESS = 1 << (23 - 17)
    GET = 1 << (23 - 19)
    SET = 1 << (23 - 20)
    SELECTIVE_ACCESS = 1 << (23 - 21)
    EVENT_NOTIFICATION = 1 << (23 - 22)
    ACTION = 1 << (23 - 23)


def _conformance_bytes(conformance: Conformance) -> bytes:
    return _CONFORMANCE_HEADER + int(conformance).to_bytes(3, "big")


def _read_conformance(reader: Reader) -> Conformance:
    start = reader.offset
    if reader.take(4, "conformance header") != _CONFORMANCE_HEADER:
        raise reader.fail("conformance is not a 24-bit [APPLICATION 31] bit string", start)
    return Conformance(reader.uint(3, "conformance"))


def _check_u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {value} outside 0-65535")


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """The client's proposed xDLMS context."""

    conformance: Conformance
    max_receive_pdu_size: int = 0xFFFF
    dlms_version: int = DLMS_VERSION
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    quality_of_service: int | None = None

    def __post_init__(self) -> None:
        _check_u16("max receive PDU size", self.max_receive_pdu_size)

    def to_bytes(self) -> bytes:
        """A-XDR bytes (tag 0x01)."""
        out = bytearray((INITIATE_REQUEST_TAG,))
        if self.dedicated_key is None:
            out.append(0x00)
        else:
            out += bytes((0x01, len(self.dedicated_key))) + self.dedicated_key
        # response-allowed is BOOLEAN DEFAULT TRUE: 00 means "the default".
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        out += b"\x00" if self.quality_of_service is None else bytes((1, self.quality_of_service))
        out.append(self.dlms_version)
        out += _conformance_bytes(self.conformance)
        out += self.max_receive_pdu_size.to_bytes(2, "big")
        return bytes(out)


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """The meter's negotiated xDLMS context."""

    conformance: Conformance
    max_receive_pdu_size: int
    dlms_version: int = DLMS_VERSION
    quality_of_service: int | None = None
    vaa_name: int = LN_VAA_NAME

    def __post_init__(self) -> None:
        _check_u16("max receive PDU size", self.max_receive_pdu_size)
        _check_u16("vaa-name", self.vaa_name)

    def to_bytes(self) -> bytes:
        """A-XDR bytes (tag 0x08)."""
        out = bytearray((INITIATE_RESPONSE_TAG,))
        out += b"\x00" if self.quality_of_service is None else bytes((1, self.quality_of_service))
        out.append(self.dlms_version)
        out += _conformance_bytes(self.conformance)
        out += self.max_receive_pdu_size.to_bytes(2, "big")
        out += self.vaa_name.to_bytes(2, "big")
        return bytes(out)


def _optional_u8(reader: Reader, what: str) -> int | None:
    return reader.u8(what) if reader.boolean(f"{what} present") else None


def read_initiate_request(reader: Reader) -> InitiateRequest:
    """Decode an InitiateRequest filling `reader` (its tag already checked by the caller)."""
    if reader.u8("initiate-request tag") != INITIATE_REQUEST_TAG:
        raise reader.fail("not an InitiateRequest", reader.offset - 1)
    dedicated_key = None
    if reader.boolean("dedicated-key present"):
        dedicated_key = reader.take(reader.axdr_length("dedicated-key length"), "dedicated-key")
    response_allowed = True
    if reader.boolean("response-allowed present"):
        response_allowed = reader.boolean("response-allowed")
    quality_of_service = _optional_u8(reader, "quality-of-service")
    dlms_version = reader.u8("dlms version")
    conformance = _read_conformance(reader)
    max_pdu = reader.uint(2, "client max receive PDU size")
    reader.expect_end("InitiateRequest")
    return InitiateRequest(
        conformance, max_pdu, dlms_version, dedicated_key, response_allowed, quality_of_service
    )


def read_initiate_response(reader: Reader) -> InitiateResponse:
    """Decode an InitiateResponse filling `reader`."""
    if reader.u8("initiate-response tag") != INITIATE_RESPONSE_TAG:
        raise reader.fail("not an InitiateResponse", reader.offset - 1)
    quality_of_service = _optional_u8(reader, "quality-of-service")
    dlms_version = reader.u8("dlms version")
    conformance = _read_conformance(reader)
    max_pdu = reader.uint(2, "server max receive PDU size")
    vaa_name = reader.uint(2, "vaa-name")
    reader.expect_end("InitiateResponse")
    return InitiateResponse(conformance, max_pdu, dlms_version, quality_of_service, vaa_name)
