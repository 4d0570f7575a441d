"""HLS authentication mechanism 5 (GMAC): challenges and the f(challenge) both parties prove."""

import hmac
import secrets

from dlms.errors import CipheringError
from dlms.security.context import (
    AUTHENTICATED_ONLY,
    INVOCATION_COUNTER_SIZE,
    TAG_SIZE,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
)
from dlms.security.counters import InvocationCounterGuard
from dlms.security.suite0 import gmac

MIN_CHALLENGE_SIZE = 8
MAX_CHALLENGE_SIZE = 64
PROOF_SIZE = 1 + INVOCATION_COUNTER_SIZE + TAG_SIZE
HLS_SECURITY_CONTROL = AUTHENTICATED_ONLY  # 0x10: suite 0, authentication only


def new_challenge(size: int = 32) -> bytes:
    """A fresh random challenge (CtoS in the AARQ, StoC in the AARE) of 8-64 bytes."""
    if not MIN_CHALLENGE_SIZE <= size <= MAX_CHALLENGE_SIZE:
        raise ValueError(f"challenge size {size} outside 8-64")
    return secrets.token_bytes(size)


def _check_challenge(challenge: bytes) -> None:
    # The peer chose this challenge; a short one would make our proof replayable.
    if not MIN_CHALLENGE_SIZE <= len(challenge) <= MAX_CHALLENGE_SIZE:
        raise CipheringError(f"HLS challenge of {len(challenge)} bytes outside 8-64")


def hls_gmac_proof(
    challenge: bytes, system_title: SystemTitle, invocation_counter: int, keys: SecurityKeys
) -> bytes:
    """f(challenge) = SC ‖ IC ‖ GMAC(SC ‖ AK ‖ challenge), IV from our own title and counter.

    The client proves f(StoC) through method 1 of the association object; the meter
    answers f(CtoS) in that method's return data.
    """
    _check_challenge(challenge)
    tag = gmac(HLS_SECURITY_CONTROL, system_title, invocation_counter, keys, challenge)
    header = bytes((HLS_SECURITY_CONTROL.to_byte(),))
    return header + invocation_counter.to_bytes(INVOCATION_COUNTER_SIZE, "big") + tag


def verify_hls_gmac_proof(
    proof: bytes,
    challenge: bytes,
    peer_system_title: SystemTitle,
    keys: SecurityKeys,
    guard: InvocationCounterGuard | None = None,
) -> int:
    """Check the peer's f(challenge) over the challenge we sent; returns its counter.

    CipheringError if the proof is malformed or does not verify (wrong AK, EK, system title
    or challenge); ReplayedInvocationCounter if `guard` has seen the counter.
    """
    _check_challenge(challenge)
    if len(proof) != PROOF_SIZE:
        raise CipheringError(f"HLS-GMAC proof is {len(proof)} bytes, not {PROOF_SIZE}")
    if SecurityControl.from_byte(proof[0]) != HLS_SECURITY_CONTROL:
        raise CipheringError(f"HLS-GMAC proof with security control {proof[0]:#04x}, not 0x10")
    counter = int.from_bytes(proof[1 : 1 + INVOCATION_COUNTER_SIZE], "big")
    if guard is not None:
        guard.check(counter)
    expected = gmac(HLS_SECURITY_CONTROL, peer_system_title, counter, keys, challenge)
    if not hmac.compare_digest(expected, proof[1 + INVOCATION_COUNTER_SIZE :]):
        raise CipheringError("HLS-GMAC proof does not verify")
    if guard is not None:
        guard.accept(counter)
    return counter
