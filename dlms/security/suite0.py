"""Security suite 0 (AES-GCM-128, 96-bit tags): protect and check APDU payloads, and GMAC."""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dlms.errors import CipheringError
from dlms.security.context import (
    SUITE_0,
    TAG_SIZE,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
    initialization_vector,
)


def check_policy(control: SecurityControl) -> None:
    """CipheringError unless `control` is suite 0, authenticated, uncompressed.

    Encryption without authentication is refused on purpose: a flipped ciphertext bit would
    go unnoticed, and no association of ours is meant to run that way.
    """
    if control.suite != SUITE_0:
        raise CipheringError(f"security suite {control.suite} not supported (only suite 0)")
    if not control.authenticated:
        raise CipheringError("unauthenticated protection refused")
    if control.compressed:
        raise CipheringError("compressed APDUs not supported")


def _additional_data(control: SecurityControl, keys: SecurityKeys, clear: bytes) -> bytes:
    # Green Book: SC ‖ AK when encrypted; SC ‖ AK ‖ the APDU itself when only authenticated.
    return bytes((control.to_byte(),)) + keys.authentication_key + clear


def encrypt(
    control: SecurityControl,
    system_title: SystemTitle,
    invocation_counter: int,
    keys: SecurityKeys,
    plaintext: bytes,
) -> bytes:
    """What follows the security header: ciphertext ‖ T, or plaintext ‖ T if authenticated only."""
    check_policy(control)
    iv = initialization_vector(system_title, invocation_counter)
    aesgcm = AESGCM(keys.encryption_key)
    if control.encrypted:
        # AESGCM appends a 16-byte tag; DLMS keeps its first 12 bytes.
        sealed = aesgcm.encrypt(iv, plaintext, _additional_data(control, keys, b""))
        return sealed[: len(plaintext) + TAG_SIZE]
    tag = aesgcm.encrypt(iv, b"", _additional_data(control, keys, plaintext))
    return plaintext + tag[:TAG_SIZE]


def decrypt(
    control: SecurityControl,
    system_title: SystemTitle,
    invocation_counter: int,
    keys: SecurityKeys,
    protected: bytes,
) -> bytes:
    """The plaintext of `encrypt`'s output, or CipheringError if the tag does not verify."""
    check_policy(control)
    if len(protected) < TAG_SIZE:
        raise CipheringError(f"protected payload of {len(protected)} bytes has no 12-byte tag")
    body, tag = protected[:-TAG_SIZE], protected[-TAG_SIZE:]
    if control.encrypted:
        ciphertext, additional = body, _additional_data(control, keys, b"")
    else:
        ciphertext, additional = b"", _additional_data(control, keys, body)
    iv = initialization_vector(system_title, invocation_counter)
    # AESGCM.decrypt only takes full 16-byte tags; the Cipher API verifies a truncated one.
    decryptor = Cipher(
        algorithms.AES(keys.encryption_key), modes.GCM(iv, tag, min_tag_length=TAG_SIZE)
    ).decryptor()
    decryptor.authenticate_additional_data(additional)
    plaintext = decryptor.update(ciphertext)
    try:
        decryptor.finalize()
    except InvalidTag as exc:
        raise CipheringError(
            "authentication tag does not verify (key, system title, counter or bytes differ)"
        ) from exc
    return plaintext if control.encrypted else body


def gmac(
    control: SecurityControl,
    system_title: SystemTitle,
    invocation_counter: int,
    keys: SecurityKeys,
    data: bytes,
) -> bytes:
    """GMAC: the 12-byte GCM tag over SC ‖ AK ‖ data with nothing encrypted."""
    if control.encrypted:
        raise ValueError("GMAC authenticates only; the encryption bit must be clear")
    check_policy(control)
    iv = initialization_vector(system_title, invocation_counter)
    tag = AESGCM(keys.encryption_key).encrypt(iv, b"", _additional_data(control, keys, data))
    return tag[:TAG_SIZE]
