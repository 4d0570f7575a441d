"""Security suite 0 for DLMS: ciphered APDUs, invocation counters, HLS-GMAC and key wrap."""

from dlms.security.ciphered_apdu import (
    CipheredApdu,
    CipheredTag,
    decode_ciphered_apdu,
    protect,
    read_ciphered_apdu,
    unprotect,
)
from dlms.security.context import (
    AUTHENTICATED_AND_ENCRYPTED,
    AUTHENTICATED_ONLY,
    MAX_INVOCATION_COUNTER,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
)
from dlms.security.counters import (
    InvocationCounterGuard,
    InvocationCounterSource,
    ReserveCounters,
)
from dlms.security.hls_gmac import hls_gmac_proof, new_challenge, verify_hls_gmac_proof
from dlms.security.key_transfer import (
    KEY_TRANSFER_METHOD,
    SECURITY_SETUP,
    SECURITY_SETUP_CLASS_ID,
    KeyId,
    WrappedKey,
    key_transfer_data,
    key_transfer_request,
    read_key_transfer_data,
    unwrap_key,
    unwrap_key_transfer,
    wrap_key,
)
from dlms.security.suite0 import decrypt, encrypt, gmac

__all__ = [
    "AUTHENTICATED_AND_ENCRYPTED",
    "AUTHENTICATED_ONLY",
    "KEY_TRANSFER_METHOD",
    "MAX_INVOCATION_COUNTER",
    "SECURITY_SETUP",
    "SECURITY_SETUP_CLASS_ID",
    "CipheredApdu",
    "CipheredTag",
    "InvocationCounterGuard",
    "InvocationCounterSource",
    "KeyId",
    "ReserveCounters",
    "SecurityControl",
    "SecurityKeys",
    "SystemTitle",
    "WrappedKey",
    "decode_ciphered_apdu",
    "decrypt",
    "encrypt",
    "gmac",
    "hls_gmac_proof",
    "key_transfer_data",
    "key_transfer_request",
    "new_challenge",
    "protect",
    "read_ciphered_apdu",
    "read_key_transfer_data",
    "unprotect",
    "unwrap_key",
    "unwrap_key_transfer",
    "verify_hls_gmac_proof",
    "wrap_key",
]
