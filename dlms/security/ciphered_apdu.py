"""Ciphered xDLMS APDUs: glo-* service-specific and general-glo-ciphering, suite 0."""

from dataclasses import dataclass
from enum import IntEnum

from dlms._reader import Reader, encode_length
from dlms.errors import CipheringError
from dlms.security.context import (
    AUTHENTICATED_AND_ENCRYPTED,
    INVOCATION_COUNTER_SIZE,
    SYSTEM_TITLE_SIZE,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
    check_invocation_counter,
)
from dlms.security.counters import InvocationCounterGuard
from dlms.security.suite0 import decrypt, encrypt


class CipheredTag(IntEnum):
    """APDU tags of ciphered APDUs with global keys (Green Book ASN.1, COSEMpdu/XDLMS-APDU)."""

    GLO_INITIATE_REQUEST = 0x21  # [33]
    GLO_INITIATE_RESPONSE = 0x28  # [40]
    GLO_GET_REQUEST = 0xC8  # [200]
    GLO_SET_REQUEST = 0xC9  # [201]
    GLO_ACTION_REQUEST = 0xCB  # [203]
    GLO_GET_RESPONSE = 0xCC  # [204]
    GLO_SET_RESPONSE = 0xCD  # [205]
    GLO_ACTION_RESPONSE = 0xCF  # [207]
    GENERAL_GLO_CIPHERING = 0xDB  # [219]: carries the sender's system title itself


# The glo-* tag for each plain APDU tag: initiate-request/-response, GET/SET/ACTION.
_GLO_TAG_FOR_PLAIN = {
    0x01: CipheredTag.GLO_INITIATE_REQUEST,
    0x08: CipheredTag.GLO_INITIATE_RESPONSE,
    0xC0: CipheredTag.GLO_GET_REQUEST,
    0xC1: CipheredTag.GLO_SET_REQUEST,
    0xC3: CipheredTag.GLO_ACTION_REQUEST,
    0xC4: CipheredTag.GLO_GET_RESPONSE,
    0xC5: CipheredTag.GLO_SET_RESPONSE,
    0xC7: CipheredTag.GLO_ACTION_RESPONSE,
}
CIPHERED_TAGS = frozenset(CipheredTag)
_SECURITY_HEADER_SIZE = 1 + INVOCATION_COUNTER_SIZE


@dataclass(frozen=True, slots=True)
class CipheredApdu:
    """Tag, [system title,] then an OCTET STRING of SC ‖ IC ‖ ciphertext-or-APDU ‖ T.

    `system_title` is present exactly for general-glo-ciphering; a glo-* APDU's IV uses
    the system title the peer gave in its AARQ/AARE.
    """

    tag: CipheredTag
    security_control: SecurityControl
    invocation_counter: int
    protected: bytes
    system_title: SystemTitle | None = None

    def __post_init__(self) -> None:
        check_invocation_counter(self.invocation_counter)
        general = self.tag is CipheredTag.GENERAL_GLO_CIPHERING
        if general != (self.system_title is not None):
            raise ValueError("a system title goes with general-glo-ciphering and only there")

    def to_bytes(self) -> bytes:
        """Tag, lengths in A-XDR (BER) form, security header, protected payload."""
        out = bytearray((self.tag,))
        if self.system_title is not None:
            out += encode_length(SYSTEM_TITLE_SIZE) + self.system_title.value
        out += encode_length(_SECURITY_HEADER_SIZE + len(self.protected))
        out.append(self.security_control.to_byte())
        out += self.invocation_counter.to_bytes(INVOCATION_COUNTER_SIZE, "big")
        out += self.protected
        return bytes(out)


def read_ciphered_apdu(reader: Reader) -> CipheredApdu:
    """Decode a ciphered APDU filling `reader`; malformed bytes raise DlmsDecodeError."""
    tag = reader.enum(CipheredTag, "ciphered APDU tag")
    system_title = None
    if tag is CipheredTag.GENERAL_GLO_CIPHERING:
        start = reader.offset
        if reader.axdr_length("system title length") != SYSTEM_TITLE_SIZE:
            raise reader.fail("system title is not 8 bytes", start)
        system_title = SystemTitle(reader.take(SYSTEM_TITLE_SIZE, "system title"))
    content = reader.sub(reader.axdr_length("ciphered content length"), "ciphered content")
    reader.expect_end("ciphered APDU")
    control = SecurityControl.from_byte(content.u8("security control"))
    counter = content.uint(INVOCATION_COUNTER_SIZE, "invocation counter")
    return CipheredApdu(tag, control, counter, content.rest(), system_title)


def decode_ciphered_apdu(buffer: bytes) -> CipheredApdu:
    """Decode one ciphered APDU (a wrapper frame's payload)."""
    return read_ciphered_apdu(Reader(buffer))


def protect(
    plain_apdu: bytes,
    system_title: SystemTitle,
    invocation_counter: int,
    keys: SecurityKeys,
    control: SecurityControl = AUTHENTICATED_AND_ENCRYPTED,
    *,
    general: bool = False,
) -> CipheredApdu:
    """Cipher an encoded APDU as the sender `system_title` with a fresh counter.

    The glo-* tag follows the plain APDU's tag; `general` uses general-glo-ciphering.
    The caller owns counter freshness (InvocationCounterSource).
    """
    if not plain_apdu or plain_apdu[0] not in _GLO_TAG_FOR_PLAIN:
        raise ValueError("only initiate, GET, SET and ACTION APDUs are ciphered here")
    protected = encrypt(control, system_title, invocation_counter, keys, plain_apdu)
    if general:
        return CipheredApdu(
            CipheredTag.GENERAL_GLO_CIPHERING, control, invocation_counter, protected, system_title
        )
    tag = _GLO_TAG_FOR_PLAIN[plain_apdu[0]]
    return CipheredApdu(tag, control, invocation_counter, protected)


def unprotect(
    apdu: CipheredApdu,
    sender_system_title: SystemTitle,
    keys: SecurityKeys,
    guard: InvocationCounterGuard | None = None,
) -> bytes:
    """The plain APDU bytes, after checking freshness, the tag and the sender.

    `sender_system_title` is the peer's, learned in the association (or from the roster).
    CipheringError (or its ReplayedInvocationCounter) if anything does not hold; the guard
    records the counter only once the APDU authenticated.
    """
    if apdu.system_title is not None and apdu.system_title != sender_system_title:
        raise CipheringError(
            f"general-glo-ciphering from unexpected system title {apdu.system_title}"
        )
    if guard is not None:
        guard.check(apdu.invocation_counter)
    plain = decrypt(
        apdu.security_control, sender_system_title, apdu.invocation_counter, keys, apdu.protected
    )
    if apdu.tag is not CipheredTag.GENERAL_GLO_CIPHERING and (
        not plain or _GLO_TAG_FOR_PLAIN.get(plain[0]) is not apdu.tag
    ):
        # Authentic, but not what the outer tag announced: the sender is broken, not benign.
        raise CipheringError(f"{apdu.tag.name.lower()} carried another kind of APDU")
    if guard is not None:
        guard.accept(apdu.invocation_counter)
    return plain
