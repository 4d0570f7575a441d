"""Refusals: every tampered, misaddressed, replayed or malformed input is a DlmsError."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlms.axdr import Array, Enumerated, OctetString, Structure, Unsigned
from dlms.errors import (
    CipheringError,
    DlmsDecodeError,
    DlmsError,
    ReplayedInvocationCounter,
)
from dlms.security import (
    AUTHENTICATED_AND_ENCRYPTED,
    AUTHENTICATED_ONLY,
    CipheredApdu,
    CipheredTag,
    InvocationCounterGuard,
    KeyId,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
    decode_ciphered_apdu,
    hls_gmac_proof,
    new_challenge,
    protect,
    read_key_transfer_data,
    unprotect,
    unwrap_key,
    unwrap_key_transfer,
    verify_hls_gmac_proof,
    wrap_key,
)

KEYS = SecurityKeys(bytes(range(16)), bytes(range(0xD0, 0xE0)))
OTHER_KEY = bytes(range(1, 17))
METER = SystemTitle(bytes.fromhex("4D4D4D0000BC614E"))
GATEWAY = SystemTitle(bytes.fromhex("5357590000000001"))
# ACTION-Request remote_disconnect on 0.0.96.3.10.255 (DLMS-NOTES).
DISCONNECT = bytes.fromhex("C3 01 C1 00 46 00 00 60 03 0A FF 01 01 0F 00")


def ciphered(
    invocation_counter: int = 7, control: SecurityControl = AUTHENTICATED_AND_ENCRYPTED
) -> bytes:
    return protect(DISCONNECT, GATEWAY, invocation_counter, KEYS, control).to_bytes()


def test_the_untampered_apdu_opens() -> None:
    # The baseline every refusal below differs from in one respect only.
    assert unprotect(decode_ciphered_apdu(ciphered()), GATEWAY, KEYS) == DISCONNECT


@pytest.mark.parametrize(
    "keys",
    [
        SecurityKeys(OTHER_KEY, KEYS.authentication_key),
        SecurityKeys(KEYS.encryption_key, OTHER_KEY),
    ],
    ids=["wrong encryption key", "wrong authentication key"],
)
@pytest.mark.parametrize("control", [AUTHENTICATED_AND_ENCRYPTED, AUTHENTICATED_ONLY])
def test_wrong_key_is_refused(keys: SecurityKeys, control: SecurityControl) -> None:
    apdu = decode_ciphered_apdu(ciphered(control=control))
    with pytest.raises(CipheringError, match="tag does not verify"):
        unprotect(apdu, GATEWAY, keys)


def test_wrong_system_title_is_refused() -> None:
    # A neighbour replaying our ciphered APDU as its own: the IV differs, the tag fails.
    with pytest.raises(CipheringError, match="tag does not verify"):
        unprotect(decode_ciphered_apdu(ciphered()), METER, KEYS)


def test_general_glo_ciphering_from_another_party_is_refused() -> None:
    apdu = protect(DISCONNECT, METER, 7, KEYS, general=True)
    with pytest.raises(CipheringError, match="unexpected system title"):
        unprotect(apdu, GATEWAY, KEYS)


@pytest.mark.parametrize("control", [AUTHENTICATED_AND_ENCRYPTED, AUTHENTICATED_ONLY])
def test_every_flipped_bit_is_refused(control: SecurityControl) -> None:
    # Every bit after the tag and length: security control, counter, payload, GCM tag.
    encoded = ciphered(control=control)
    for bit in range(16, len(encoded) * 8):
        tampered = bytearray(encoded)
        tampered[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(CipheringError):
            unprotect(decode_ciphered_apdu(bytes(tampered)), GATEWAY, KEYS)


def test_every_truncation_is_refused() -> None:
    encoded = ciphered()
    for length in range(len(encoded)):
        with pytest.raises(DlmsDecodeError):
            decode_ciphered_apdu(encoded[:length])


def test_consistent_but_tagless_payload_is_refused() -> None:
    # Well framed, but shorter than the 12-byte GCM tag.
    apdu = CipheredApdu(CipheredTag.GLO_ACTION_REQUEST, AUTHENTICATED_AND_ENCRYPTED, 7, b"short")
    decoded = decode_ciphered_apdu(apdu.to_bytes())
    with pytest.raises(CipheringError, match="no 12-byte tag"):
        unprotect(decoded, GATEWAY, KEYS)


def test_outer_tag_must_announce_the_inner_apdu() -> None:
    # An authentic glo-get-request whose outer tag was relabelled glo-action-request.
    get_clock = bytes.fromhex("C0 01 C1 00 08 00 00 01 00 00 FF 02 00")
    genuine = protect(get_clock, GATEWAY, 7, KEYS)
    relabelled = CipheredApdu(
        CipheredTag.GLO_ACTION_REQUEST,
        genuine.security_control,
        genuine.invocation_counter,
        genuine.protected,
    )
    with pytest.raises(CipheringError, match="glo_action_request carried another kind"):
        unprotect(relabelled, GATEWAY, KEYS)


@pytest.mark.parametrize(
    "control",
    [
        SecurityControl(encrypted=True),
        SecurityControl(),
        SecurityControl(suite=1, authenticated=True, encrypted=True),
        SecurityControl(authenticated=True, encrypted=True, compressed=True),
    ],
    ids=["encryption only", "none", "suite 1", "compressed"],
)
def test_unsupported_protection_is_refused_both_ways(control: SecurityControl) -> None:
    with pytest.raises(CipheringError):
        protect(DISCONNECT, GATEWAY, 7, KEYS, control)
    received = CipheredApdu(CipheredTag.GLO_ACTION_REQUEST, control, 7, DISCONNECT + bytes(12))
    with pytest.raises(CipheringError):
        unprotect(received, GATEWAY, KEYS)


def test_replayed_apdu_is_refused_and_reported() -> None:
    guard = InvocationCounterGuard()
    captured = decode_ciphered_apdu(ciphered(invocation_counter=41))
    assert unprotect(captured, GATEWAY, KEYS, guard) == DISCONNECT
    with pytest.raises(ReplayedInvocationCounter) as refused:
        unprotect(captured, GATEWAY, KEYS, guard)
    assert (refused.value.received, refused.value.last_accepted) == (41, 41)


def test_lower_counter_is_refused() -> None:
    guard = InvocationCounterGuard(last_accepted=100)
    with pytest.raises(ReplayedInvocationCounter):
        unprotect(decode_ciphered_apdu(ciphered(invocation_counter=99)), GATEWAY, KEYS, guard)
    assert guard.last_accepted == 100


def test_forged_apdu_does_not_move_the_replay_window() -> None:
    # A forger claiming counter 2**32-1 must not lock the genuine sender out.
    guard = InvocationCounterGuard(last_accepted=10)
    genuine = decode_ciphered_apdu(ciphered(invocation_counter=11))
    forged = CipheredApdu(genuine.tag, genuine.security_control, 0xFFFF_FFFF, genuine.protected)
    with pytest.raises(CipheringError):
        unprotect(forged, GATEWAY, KEYS, guard)
    assert guard.last_accepted == 10
    assert unprotect(genuine, GATEWAY, KEYS, guard) == DISCONNECT
    assert guard.last_accepted == 11


@settings(max_examples=50, deadline=None)
@given(garbage=st.binary(max_size=64))
def test_garbage_fails_only_with_dlms_errors(garbage: bytes) -> None:
    # Never a cryptography, ValueError or IndexError leaking out (a forged tag: 2**-96).
    for buffer in (garbage, bytes((0xCB,)) + garbage, bytes((0xDB, 0x08)) + garbage):
        with pytest.raises(DlmsError):
            unprotect(decode_ciphered_apdu(buffer), GATEWAY, KEYS)


# HLS-GMAC: the meter checks the gateway's f(StoC).
STOC = bytes.fromhex("503677524A323146")


def gateway_proof(counter: int = 5) -> bytes:
    return hls_gmac_proof(STOC, GATEWAY, counter, KEYS)


def test_hls_proof_baseline_verifies() -> None:
    assert verify_hls_gmac_proof(gateway_proof(), STOC, GATEWAY, KEYS) == 5


@pytest.mark.parametrize(
    ("challenge", "title", "keys"),
    [
        (STOC, GATEWAY, SecurityKeys(KEYS.encryption_key, OTHER_KEY)),
        (STOC, GATEWAY, SecurityKeys(OTHER_KEY, KEYS.authentication_key)),
        (STOC, METER, KEYS),
        (bytes(8), GATEWAY, KEYS),
    ],
    ids=[
        "wrong authentication key",
        "wrong encryption key",
        "wrong system title",
        "other challenge",
    ],
)
def test_hls_proof_that_does_not_verify_is_refused(
    challenge: bytes, title: SystemTitle, keys: SecurityKeys
) -> None:
    with pytest.raises(CipheringError, match="does not verify"):
        verify_hls_gmac_proof(gateway_proof(), challenge, title, keys)


def test_malformed_hls_proofs_are_refused() -> None:
    proof = gateway_proof()
    for bad in (proof[:-1], proof + b"\x00", bytes((0x30,)) + proof[1:]):
        with pytest.raises(CipheringError):
            verify_hls_gmac_proof(bad, STOC, GATEWAY, KEYS)
    with pytest.raises(CipheringError, match="outside 8-64"):
        hls_gmac_proof(bytes(7), GATEWAY, 5, KEYS)


def test_replayed_hls_proof_is_refused() -> None:
    guard = InvocationCounterGuard()
    verify_hls_gmac_proof(gateway_proof(5), STOC, GATEWAY, KEYS, guard)
    with pytest.raises(ReplayedInvocationCounter):
        verify_hls_gmac_proof(gateway_proof(5), STOC, GATEWAY, KEYS, guard)


def test_challenges_are_random_and_bounded() -> None:
    assert len(new_challenge()) == 32
    assert {len(new_challenge(8)), len(new_challenge(64))} == {8, 64}
    assert new_challenge() != new_challenge()
    for size in (7, 65):
        with pytest.raises(ValueError, match="outside 8-64"):
            new_challenge(size)


# Key wrap and key_transfer.
MASTER = bytes(range(0x40, 0x50))


def test_unwrap_with_wrong_master_key_is_refused() -> None:
    with pytest.raises(CipheringError, match="does not unwrap"):
        unwrap_key(OTHER_KEY, wrap_key(MASTER, KEYS.encryption_key))


def test_unwrap_of_wrong_length_is_refused() -> None:
    wrapped = wrap_key(MASTER, KEYS.encryption_key)
    for bad in (wrapped[:-8], wrapped + bytes(8), b""):
        with pytest.raises(CipheringError, match="not 24"):
            unwrap_key(MASTER, bad)


def transfer(*items: tuple[int, bytes]) -> Array:
    return Array(tuple(Structure((Enumerated(key_id), OctetString(w))) for key_id, w in items))


def test_malformed_key_transfer_parameters_are_refused() -> None:
    wrapped = wrap_key(MASTER, KEYS.encryption_key)
    for parameters in (
        Array(()),
        OctetString(wrapped),
        transfer((4, wrapped)),
        transfer((0, wrapped), (0, wrapped)),
        Array((Structure((Unsigned(0), OctetString(wrapped))),)),
        Array((Structure((Enumerated(0),)),)),
    ):
        with pytest.raises(DlmsDecodeError):
            read_key_transfer_data(parameters)


def test_key_transfer_is_all_or_nothing() -> None:
    good = wrap_key(MASTER, KEYS.encryption_key)
    bad = wrap_key(OTHER_KEY, KEYS.authentication_key)
    with pytest.raises(CipheringError):
        unwrap_key_transfer(MASTER, transfer((0, good), (2, bad)))
    assert unwrap_key_transfer(MASTER, transfer((0, good))) == {
        KeyId.GLOBAL_UNICAST_ENCRYPTION: KEYS.encryption_key
    }


def test_keys_never_appear_in_reprs() -> None:
    assert KEYS.encryption_key.hex() not in repr(KEYS).lower()
    assert repr(KEYS) == "SecurityKeys()"
