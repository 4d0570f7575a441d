"""Decode any APDU this package speaks, choosing the decoder by its first byte."""

from dlms._reader import Reader
from dlms.acse import (
    AARE_TAG,
    AARQ_TAG,
    RLRE_TAG,
    RLRQ_TAG,
    Aare,
    Aarq,
    Rlre,
    Rlrq,
    decode_aare,
    decode_aarq,
    decode_rlre,
    decode_rlrq,
)
from dlms.axdr import DEFAULT_LIMITS, DecodeLimits
from dlms.security.ciphered_apdu import CIPHERED_TAGS, CipheredApdu, read_ciphered_apdu
from dlms.service_errors import (
    CONFIRMED_SERVICE_ERROR_TAG,
    EXCEPTION_RESPONSE_TAG,
    ConfirmedServiceError,
    ExceptionResponse,
    read_confirmed_service_error,
    read_exception_response,
)
from dlms.xdlms import Tag, XdlmsApdu, decode_xdlms

Apdu = (
    Aarq | Aare | Rlrq | Rlre | XdlmsApdu | ExceptionResponse | ConfirmedServiceError | CipheredApdu
)


def decode_apdu(buffer: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Apdu:
    """Decode one APDU (e.g. a wrapper frame's payload); DlmsDecodeError if it is not one."""
    reader = Reader(buffer)
    tag = reader.peek_u8() if buffer else None
    if tag == AARQ_TAG:
        return decode_aarq(buffer)
    if tag == AARE_TAG:
        return decode_aare(buffer)
    if tag == RLRQ_TAG:
        return decode_rlrq(buffer)
    if tag == RLRE_TAG:
        return decode_rlre(buffer)
    if tag == EXCEPTION_RESPONSE_TAG:
        return read_exception_response(reader)
    if tag == CONFIRMED_SERVICE_ERROR_TAG:
        return read_confirmed_service_error(reader)
    if tag in Tag._value2member_map_:
        return decode_xdlms(buffer, limits)
    if tag in CIPHERED_TAGS:
        # Still ciphered: the session unprotects it with the peer's keys, then decodes again.
        return read_ciphered_apdu(reader)
    raise reader.fail("empty APDU" if tag is None else f"unsupported APDU tag {tag:#04x}")
