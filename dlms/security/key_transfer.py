"""AES key wrap (RFC 3394) and IC 64 security setup key_transfer: parameters and request."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from dlms.axdr import Array, Data, Enumerated, OctetString, Structure
from dlms.errors import CipheringError, DlmsDecodeError
from dlms.obis import Obis
from dlms.security.context import KEY_SIZE
from dlms.xdlms import ActionRequestNormal, InvokeIdAndPriority, MethodDescriptor

SECURITY_SETUP_CLASS_ID = 64
SECURITY_SETUP = Obis(0, 0, 43, 0, 0)
# IEC 62056-6-2 IC 64: method 1 security_activate, 2 key_transfer (global_key_transfer in
# version 0), 3 key_agreement, ...
KEY_TRANSFER_METHOD = 2
WRAPPED_KEY_SIZE = KEY_SIZE + 8  # RFC 3394 adds one 64-bit integrity block
_DEFAULT_INVOKE = InvokeIdAndPriority()


class KeyId(IntEnum):
    """key_id of key_transfer_data."""

    GLOBAL_UNICAST_ENCRYPTION = 0
    GLOBAL_BROADCAST_ENCRYPTION = 1
    AUTHENTICATION = 2
    MASTER = 3  # the key-encryption key itself


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """One key_transfer_data element: which key, wrapped with the master key."""

    key_id: KeyId
    wrapped: bytes = field(repr=False)


def _check_key(name: str, key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"{name} is {len(key)} bytes; suite 0 keys are 16")


def wrap_key(master_key: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap of a 16-byte key under the master key (KEK): 24 bytes."""
    _check_key("master key", master_key)
    _check_key("key to wrap", key)
    return aes_key_wrap(master_key, key)


def unwrap_key(master_key: bytes, wrapped: bytes) -> bytes:
    """The 16-byte key inside `wrapped`; CipheringError if its integrity check fails."""
    _check_key("master key", master_key)
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise CipheringError(f"wrapped key is {len(wrapped)} bytes, not {WRAPPED_KEY_SIZE}")
    try:
        return aes_key_unwrap(master_key, wrapped)
    except InvalidUnwrap as exc:
        raise CipheringError("wrapped key does not unwrap with this master key") from exc


def key_transfer_data(wrapped_keys: tuple[WrappedKey, ...]) -> Array:
    """array key_transfer_data, each a structure {key_id enum, key_wrapped octet-string}."""
    return Array(
        tuple(
            Structure((Enumerated(item.key_id), OctetString(item.wrapped))) for item in wrapped_keys
        )
    )


def read_key_transfer_data(parameters: Data) -> tuple[WrappedKey, ...]:
    """The wrapped keys of decoded key_transfer parameters.

    DlmsDecodeError (offset 0: the shape is checked after the A-XDR decode) for anything
    but a non-empty array of {known key id, octet-string}, or a key id given twice.
    """
    if not isinstance(parameters, Array) or not parameters.items:
        raise DlmsDecodeError("key_transfer parameters are not a non-empty array", 0)
    wrapped_keys: list[WrappedKey] = []
    for item in parameters.items:
        match item:
            case Structure((Enumerated(key_id), OctetString(wrapped))) if (
                key_id in KeyId._value2member_map_
            ):
                wrapped_keys.append(WrappedKey(KeyId(key_id), wrapped))
            case _:
                raise DlmsDecodeError("key_transfer_data is not {known key_id, octet-string}", 0)
    if len({item.key_id for item in wrapped_keys}) != len(wrapped_keys):
        raise DlmsDecodeError("key_transfer names a key twice", 0)
    return tuple(wrapped_keys)


def key_transfer_request(
    master_key: bytes,
    new_keys: Mapping[KeyId, bytes],
    invoke: InvokeIdAndPriority = _DEFAULT_INVOKE,
    instance: Obis = SECURITY_SETUP,
) -> ActionRequestNormal:
    """ACTION-Request for IC 64 key_transfer: each new key wrapped with the master key."""
    if not new_keys:
        raise ValueError("key_transfer needs at least one key")
    wrapped_keys = tuple(
        WrappedKey(key_id, wrap_key(master_key, key)) for key_id, key in sorted(new_keys.items())
    )
    method = MethodDescriptor(SECURITY_SETUP_CLASS_ID, instance, KEY_TRANSFER_METHOD)
    return ActionRequestNormal(method, key_transfer_data(wrapped_keys), invoke)


def unwrap_key_transfer(master_key: bytes, parameters: Data) -> dict[KeyId, bytes]:
    """The meter's side: the new keys of a key_transfer, all or nothing.

    DlmsDecodeError for malformed parameters, CipheringError if any key fails to unwrap.
    """
    return {
        item.key_id: unwrap_key(master_key, item.wrapped)
        for item in read_key_transfer_data(parameters)
    }
