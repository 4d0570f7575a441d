"""ACSE in BER: AARQ/AARE to open a logical-name association, RLRQ/RLRE to release it."""

from dataclasses import dataclass
from enum import IntEnum

from dlms._ber import decode_oid, encode_oid, read_tlv, tlv
from dlms._reader import Reader
from dlms.enums import (
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    AssociationResult,
    ReleaseRequestReason,
    ReleaseResponseReason,
)
from dlms.errors import AssociationRefused
from dlms.initiate import (
    INITIATE_RESPONSE_TAG,
    InitiateRequest,
    InitiateResponse,
    read_initiate_request,
    read_initiate_response,
)
from dlms.security.ciphered_apdu import CipheredApdu, CipheredTag, read_ciphered_apdu
from dlms.service_errors import ConfirmedServiceError, read_confirmed_service_error

AARQ_TAG = 0x60
AARE_TAG = 0x61
RLRQ_TAG = 0x62
RLRE_TAG = 0x63

# Object identifiers assigned to the DLMS UA: {joint-iso-ccitt country(16) ch(756)
# identified-organization(5) DLMS-UA(8)}, then 1 for application contexts, 2 for mechanisms.
APPLICATION_CONTEXT_ARC = "2.16.756.5.8.1"
MECHANISM_ARC = "2.16.756.5.8.2"
LN_CONTEXT_OID = "2.16.756.5.8.1.1"
LN_CIPHERED_CONTEXT_OID = "2.16.756.5.8.1.3"
LLS_MECHANISM_OID = "2.16.756.5.8.2.1"
HLS_GMAC_MECHANISM_OID = "2.16.756.5.8.2.5"

# Context-specific tags (class bits 10, constructed bit where the field is EXPLICIT).
_APPLICATION_CONTEXT_NAME = 0xA1
_AARE_RESULT = 0xA2
_AARE_DIAGNOSTIC = 0xA3
_CALLING_AP_TITLE = 0xA6
_RESPONDING_AP_TITLE = 0xA4
_SENDER_ACSE_REQUIREMENTS = 0x8A
_RESPONDER_ACSE_REQUIREMENTS = 0x88
_AARQ_MECHANISM_NAME = 0x8B
_AARE_MECHANISM_NAME = 0x89
_CALLING_AUTHENTICATION_VALUE = 0xAC
_RESPONDING_AUTHENTICATION_VALUE = 0xAA
_USER_INFORMATION = 0xBE
_RELEASE_REASON = 0x80
_CHARSTRING = 0x80  # Authentication-value CHOICE charstring [0]
_SERVICE_USER = 0xA1
_SERVICE_PROVIDER = 0xA2
_UNIVERSAL_INTEGER = 0x02
_UNIVERSAL_OCTET_STRING = 0x04
_UNIVERSAL_OID = 0x06
# ACSE-requirements BIT STRING {authentication(0)}: 7 unused bits, first bit set.
_AUTHENTICATION_FUNCTIONAL_UNIT = bytes((0x07, 0x80))


class ApplicationContext(IntEnum):
    """Last arc of the application context name."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_CIPHERED = 3
    SHORT_NAME_CIPHERED = 4


class Mechanism(IntEnum):
    """Last arc of the authentication mechanism name (no mechanism = lowest level)."""

    LLS = 1
    HLS = 2
    HLS_MD5 = 3
    HLS_SHA1 = 4
    HLS_GMAC = 5
    HLS_SHA256 = 6
    HLS_ECDSA = 7


@dataclass(frozen=True, slots=True)
class Aarq:
    """Association request. `authentication_value` is the LLS password or HLS CtoS.

    With ciphering, `initiate_request` is a glo-initiate-request and `calling_ap_title` the
    client's system title (its IV's first half).
    """

    initiate_request: InitiateRequest | CipheredApdu
    application_context: ApplicationContext = ApplicationContext.LOGICAL_NAME
    mechanism: Mechanism | None = None
    authentication_value: bytes | None = None
    calling_ap_title: bytes | None = None

    def to_bytes(self) -> bytes:
        """BER bytes (tag 0x60), fields in ASN.1 order."""
        body = _context_name(self.application_context)
        if self.calling_ap_title is not None:
            body += tlv(_CALLING_AP_TITLE, tlv(_UNIVERSAL_OCTET_STRING, self.calling_ap_title))
        if self.mechanism is not None:
            body += tlv(_SENDER_ACSE_REQUIREMENTS, _AUTHENTICATION_FUNCTIONAL_UNIT)
            body += tlv(_AARQ_MECHANISM_NAME, encode_oid(f"{MECHANISM_ARC}.{self.mechanism}"))
        if self.authentication_value is not None:
            body += tlv(_CALLING_AUTHENTICATION_VALUE, tlv(_CHARSTRING, self.authentication_value))
        body += _user_information(self.initiate_request.to_bytes())
        return tlv(AARQ_TAG, body)


@dataclass(frozen=True, slots=True)
class Aare:
    """Association response; `authentication_value` carries the HLS StoC.

    With ciphering, `user_information` is a glo-initiate-response and `responding_ap_title`
    the meter's system title.
    """

    result: AssociationResult
    diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic
    user_information: InitiateResponse | ConfirmedServiceError | CipheredApdu | None
    application_context: ApplicationContext = ApplicationContext.LOGICAL_NAME
    mechanism: Mechanism | None = None
    authentication_value: bytes | None = None
    responding_ap_title: bytes | None = None

    def to_bytes(self) -> bytes:
        """BER bytes (tag 0x61), fields in ASN.1 order."""
        body = _context_name(self.application_context)
        body += tlv(_AARE_RESULT, tlv(_UNIVERSAL_INTEGER, bytes((self.result,))))
        choice = (
            _SERVICE_USER
            if isinstance(self.diagnostic, AcseServiceUserDiagnostic)
            else _SERVICE_PROVIDER
        )
        body += tlv(
            _AARE_DIAGNOSTIC, tlv(choice, tlv(_UNIVERSAL_INTEGER, bytes((self.diagnostic,))))
        )
        if self.responding_ap_title is not None:
            body += tlv(
                _RESPONDING_AP_TITLE, tlv(_UNIVERSAL_OCTET_STRING, self.responding_ap_title)
            )
        if self.mechanism is not None:
            body += tlv(_RESPONDER_ACSE_REQUIREMENTS, _AUTHENTICATION_FUNCTIONAL_UNIT)
            body += tlv(_AARE_MECHANISM_NAME, encode_oid(f"{MECHANISM_ARC}.{self.mechanism}"))
        if self.authentication_value is not None:
            body += tlv(
                _RESPONDING_AUTHENTICATION_VALUE, tlv(_CHARSTRING, self.authentication_value)
            )
        if self.user_information is not None:
            body += _user_information(self.user_information.to_bytes())
        return tlv(AARE_TAG, body)

    def raise_for_result(self) -> InitiateResponse | CipheredApdu:
        """The negotiated context, or AssociationRefused (or the meter's service error).

        A glo-initiate-response comes back still ciphered: unprotect it with the meter's
        system title (`responding_ap_title`) and decode the InitiateResponse inside.
        """
        if self.result is not AssociationResult.ACCEPTED:
            raise AssociationRefused(self.result, self.diagnostic)
        if isinstance(self.user_information, ConfirmedServiceError):
            raise self.user_information.to_error()
        if self.user_information is None:
            raise AssociationRefused(self.result, self.diagnostic)
        return self.user_information


@dataclass(frozen=True, slots=True)
class Rlrq:
    """Release request."""

    reason: ReleaseRequestReason | None = ReleaseRequestReason.NORMAL

    def to_bytes(self) -> bytes:
        """BER bytes (tag 0x62)."""
        body = b"" if self.reason is None else tlv(_RELEASE_REASON, bytes((self.reason,)))
        return tlv(RLRQ_TAG, body)


@dataclass(frozen=True, slots=True)
class Rlre:
    """Release response."""

    reason: ReleaseResponseReason | None = ReleaseResponseReason.NORMAL

    def to_bytes(self) -> bytes:
        """BER bytes (tag 0x63)."""
        body = b"" if self.reason is None else tlv(_RELEASE_REASON, bytes((self.reason,)))
        return tlv(RLRE_TAG, body)


def _context_name(context: ApplicationContext) -> bytes:
    oid = encode_oid(f"{APPLICATION_CONTEXT_ARC}.{context}")
    return tlv(_APPLICATION_CONTEXT_NAME, tlv(_UNIVERSAL_OID, oid))


def _user_information(xdlms_apdu: bytes) -> bytes:
    # The xDLMS APDU is A-XDR; ACSE wraps it as a BER OCTET STRING inside [30] EXPLICIT.
    return tlv(_USER_INFORMATION, tlv(_UNIVERSAL_OCTET_STRING, xdlms_apdu))


def _read_arc(reader: Reader, arc: str, enum_type: type[IntEnum], what: str) -> int:
    start = reader.offset
    oid = decode_oid(reader, what)
    prefix, _, last = oid.rpartition(".")
    if prefix != arc or int(last) not in enum_type._value2member_map_:
        raise reader.fail(f"{what}: unsupported {oid}", start)
    return int(last)


def _read_explicit(reader: Reader, tag: int, what: str) -> Reader:
    inner_tag, inner = read_tlv(reader, what)
    if inner_tag != tag:
        raise reader.fail(f"{what}: tag {inner_tag:#04x}, expected {tag:#04x}")
    reader.expect_end(what)
    return inner


def _read_small_integer(reader: Reader, what: str) -> int:
    value = _read_explicit(reader, _UNIVERSAL_INTEGER, what)
    if not 1 <= value.remaining <= 4:
        raise reader.fail(f"{what}: not a small integer")
    return value.uint(value.remaining, what)


def _read_user_information(reader: Reader) -> Reader:
    return _read_explicit(reader, _UNIVERSAL_OCTET_STRING, "user-information")


def _read_outer(buffer: bytes, tag: int, what: str) -> Reader:
    reader = Reader(buffer)
    outer_tag, body = read_tlv(reader, what)
    if outer_tag != tag:
        raise reader.fail(f"not an {what}: tag {outer_tag:#04x}", 0)
    reader.expect_end(what)
    return body


def _read_initiate_request(reader: Reader) -> InitiateRequest | CipheredApdu:
    if reader.remaining and reader.peek_u8() == CipheredTag.GLO_INITIATE_REQUEST:
        return read_ciphered_apdu(reader)
    return read_initiate_request(reader)


def decode_aarq(buffer: bytes) -> Aarq:
    """Decode an AARQ; fields this codec does not use (called titles, ...) are skipped."""
    body = _read_outer(buffer, AARQ_TAG, "AARQ")
    context = ApplicationContext.LOGICAL_NAME
    mechanism = authentication_value = calling_ap_title = None
    initiate_request = None
    seen_context = False
    while body.remaining:
        tag, value = read_tlv(body, "AARQ field")
        if tag == _APPLICATION_CONTEXT_NAME:
            oid = _read_explicit(value, _UNIVERSAL_OID, "application-context-name")
            arc = _read_arc(oid, APPLICATION_CONTEXT_ARC, ApplicationContext, "context")
            context, seen_context = ApplicationContext(arc), True
        elif tag == _CALLING_AP_TITLE:
            calling_ap_title = _read_explicit(value, _UNIVERSAL_OCTET_STRING, "ap-title").rest()
        elif tag == _AARQ_MECHANISM_NAME:
            mechanism = Mechanism(_read_arc(value, MECHANISM_ARC, Mechanism, "mechanism-name"))
        elif tag == _CALLING_AUTHENTICATION_VALUE:
            authentication_value = _read_explicit(value, _CHARSTRING, "auth value").rest()
        elif tag == _USER_INFORMATION:
            initiate_request = _read_initiate_request(_read_user_information(value))
    if not seen_context or initiate_request is None:
        raise body.fail("AARQ lacks application-context-name or user-information")
    return Aarq(initiate_request, context, mechanism, authentication_value, calling_ap_title)


def decode_aare(buffer: bytes) -> Aare:
    """Decode an AARE; fields this codec does not use are skipped."""
    body = _read_outer(buffer, AARE_TAG, "AARE")
    context = ApplicationContext.LOGICAL_NAME
    result: AssociationResult | None = None
    diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic | None = None
    mechanism = authentication_value = responding_ap_title = None
    user_information: InitiateResponse | ConfirmedServiceError | CipheredApdu | None = None
    while body.remaining:
        tag, value = read_tlv(body, "AARE field")
        start = value.offset
        if tag == _APPLICATION_CONTEXT_NAME:
            oid = _read_explicit(value, _UNIVERSAL_OID, "application-context-name")
            context = ApplicationContext(
                _read_arc(oid, APPLICATION_CONTEXT_ARC, ApplicationContext, "context")
            )
        elif tag == _AARE_RESULT:
            number = _read_small_integer(value, "result")
            if number not in AssociationResult._value2member_map_:
                raise value.fail(f"unknown association result {number}", start)
            result = AssociationResult(number)
        elif tag == _AARE_DIAGNOSTIC:
            diagnostic = _read_diagnostic(value)
        elif tag == _RESPONDING_AP_TITLE:
            responding_ap_title = _read_explicit(value, _UNIVERSAL_OCTET_STRING, "title").rest()
        elif tag == _AARE_MECHANISM_NAME:
            mechanism = Mechanism(_read_arc(value, MECHANISM_ARC, Mechanism, "mechanism-name"))
        elif tag == _RESPONDING_AUTHENTICATION_VALUE:
            authentication_value = _read_explicit(value, _CHARSTRING, "auth value").rest()
        elif tag == _USER_INFORMATION:
            apdu = _read_user_information(value)
            if apdu.remaining and apdu.peek_u8() == INITIATE_RESPONSE_TAG:
                user_information = read_initiate_response(apdu)
            elif apdu.remaining and apdu.peek_u8() == CipheredTag.GLO_INITIATE_RESPONSE:
                user_information = read_ciphered_apdu(apdu)
            else:
                user_information = read_confirmed_service_error(apdu)
    if result is None or diagnostic is None:
        raise body.fail("AARE lacks result or result-source-diagnostic")
    return Aare(
        result,
        diagnostic,
        user_information,
        context,
        mechanism,
        authentication_value,
        responding_ap_title,
    )


def _read_diagnostic(reader: Reader) -> AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic:
    start = reader.offset
    choice, value = read_tlv(reader, "result-source-diagnostic")
    reader.expect_end("result-source-diagnostic")
    number = _read_small_integer(value, "diagnostic")
    enum_type: type[AcseServiceUserDiagnostic] | type[AcseServiceProviderDiagnostic]
    if choice == _SERVICE_USER:
        enum_type = AcseServiceUserDiagnostic
    elif choice == _SERVICE_PROVIDER:
        enum_type = AcseServiceProviderDiagnostic
    else:
        raise reader.fail(f"unknown diagnostic choice {choice:#04x}", start)
    if number not in enum_type._value2member_map_:
        raise reader.fail(f"unknown diagnostic {number}", start)
    return enum_type(number)


def _decode_release(buffer: bytes, tag: int, what: str) -> int | None:
    body = _read_outer(buffer, tag, what)
    reason = None
    while body.remaining:
        field, value = read_tlv(body, f"{what} field")
        if field == _RELEASE_REASON:
            reason = value.u8("release reason")
            value.expect_end("release reason")
    return reason


def decode_rlrq(buffer: bytes) -> Rlrq:
    """Decode an RLRQ (user-information, used only with ciphering, is skipped)."""
    reason = _decode_release(buffer, RLRQ_TAG, "RLRQ")
    if reason is not None and reason not in ReleaseRequestReason._value2member_map_:
        raise Reader(buffer).fail(f"unknown release request reason {reason}")
    return Rlrq(None if reason is None else ReleaseRequestReason(reason))


def decode_rlre(buffer: bytes) -> Rlre:
    """Decode an RLRE."""
    reason = _decode_release(buffer, RLRE_TAG, "RLRE")
    if reason is not None and reason not in ReleaseResponseReason._value2member_map_:
        raise Reader(buffer).fail(f"unknown release response reason {reason}")
    return Rlre(None if reason is None else ReleaseResponseReason(reason))
