"""Suite 0 against dlms-cosem 21.3.2 (MIT), an independent implementation, both ways.

What dlms-cosem 21.3.2 has: security.encrypt/decrypt (authenticated and encrypted only),
gmac, wrap_key, the HLS-GMAC reply and check of DlmsConnection, general-glo-cipher (0xDB),
glo-initiate-request/-response (0x21/0x28) and AARQ/AARE carrying them. What it lacks, so
is not cross-checked here: the glo-get/set/action tags 0xC8-0xCF and authentication-only
protection (both pinned from Green Book Table 40 in test_dlms_security_vectors.py).
Known bugs of that release worked around here: unwrap_key checks the wrapped key's length
as if it were 16 bytes (so only its wrap is used), and its ciphered APDUs write the content
length as one byte (so its encoder is compared only below 128 bytes; its decoder reads our
long forms).
"""

from dlms_cosem import enumerations as their_enums
from dlms_cosem import security as theirs
from dlms_cosem.connection import DlmsConnection
from dlms_cosem.protocol import acse as their_acse
from dlms_cosem.protocol import xdlms as their_xdlms
from hypothesis import given, settings
from hypothesis import strategies as st

from dlms import (
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    ApplicationContext,
    AssociationResult,
    Mechanism,
    decode_aare,
    decode_aarq,
)
from dlms.security import (
    AUTHENTICATED_AND_ENCRYPTED,
    AUTHENTICATED_ONLY,
    CipheredApdu,
    CipheredTag,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
    decode_ciphered_apdu,
    decrypt,
    encrypt,
    gmac,
    hls_gmac_proof,
    protect,
    unprotect,
    unwrap_key,
    verify_hls_gmac_proof,
    wrap_key,
)

keys_16 = st.binary(min_size=16, max_size=16)
titles = st.binary(min_size=8, max_size=8)
counters = st.integers(min_value=0, max_value=0xFFFF_FFFF)
challenges = st.binary(min_size=8, max_size=64)
EXAMPLES = 60


def their_control(control: SecurityControl) -> theirs.SecurityControlField:
    return theirs.SecurityControlField.from_bytes(bytes((control.to_byte(),)))


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, title=titles, ic=counters, plaintext=st.binary(max_size=300))
def test_authenticated_encryption_matches_theirs_both_ways(
    ek: bytes, ak: bytes, title: bytes, ic: int, plaintext: bytes
) -> None:
    keys, system_title = SecurityKeys(ek, ak), SystemTitle(title)
    sc = their_control(AUTHENTICATED_AND_ENCRYPTED)
    ours = encrypt(AUTHENTICATED_AND_ENCRYPTED, system_title, ic, keys, plaintext)
    assert ours == theirs.encrypt(sc, title, ic, ek, plaintext, ak)
    assert theirs.decrypt(sc, title, ic, ek, ours, ak) == plaintext
    assert decrypt(AUTHENTICATED_AND_ENCRYPTED, system_title, ic, keys, ours) == plaintext


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, title=titles, ic=counters, challenge=challenges)
def test_gmac_matches_theirs(ek: bytes, ak: bytes, title: bytes, ic: int, challenge: bytes) -> None:
    ours = gmac(AUTHENTICATED_ONLY, SystemTitle(title), ic, SecurityKeys(ek, ak), challenge)
    assert ours == theirs.gmac(their_control(AUTHENTICATED_ONLY), title, ic, ek, ak, challenge)


def their_client(ek: bytes, ak: bytes, client_title: bytes, client_ic: int) -> DlmsConnection:
    return DlmsConnection(
        client_system_title=client_title,
        global_encryption_key=ek,
        global_authentication_key=ak,
        authentication_method=their_enums.AuthenticationMechanism.HLS_GMAC,
        client_invocation_counter=client_ic,
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, client=titles, ic=counters, stoc=challenges)
def test_their_client_proof_f_stoc_verifies_with_ours(
    ek: bytes, ak: bytes, client: bytes, ic: int, stoc: bytes
) -> None:
    connection = their_client(ek, ak, client, ic)
    connection.meter_to_client_challenge = stoc
    their_proof = connection.get_hls_reply()
    keys = SecurityKeys(ek, ak)
    assert their_proof == hls_gmac_proof(stoc, SystemTitle(client), ic, keys)
    assert verify_hls_gmac_proof(their_proof, stoc, SystemTitle(client), keys) == ic


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, client=titles, meter=titles, ic=counters, ctos=challenges)
def test_our_meter_answer_f_ctos_passes_their_check(
    ek: bytes, ak: bytes, client: bytes, meter: bytes, ic: int, ctos: bytes
) -> None:
    connection = their_client(ek, ak, client, 1)
    connection.meter_system_title = meter
    connection.client_to_meter_challenge = ctos
    our_answer = hls_gmac_proof(ctos, SystemTitle(meter), ic, SecurityKeys(ek, ak))
    assert connection.hls_response_valid(our_answer)


@settings(max_examples=EXAMPLES, deadline=None)
@given(master=keys_16, key=keys_16)
def test_key_wrap_matches_theirs(master: bytes, key: bytes) -> None:
    their_wrapped = theirs.wrap_key(their_control(AUTHENTICATED_AND_ENCRYPTED), master, key)
    assert wrap_key(master, key) == their_wrapped
    assert unwrap_key(master, their_wrapped) == key


def test_security_control_bits_match_theirs() -> None:
    # dlms-cosem accepts suites 0-2 only; every flag combination of those.
    for octet in range(256):
        if octet & 0x0F > 2:
            continue
        ours = SecurityControl.from_byte(octet)
        their = theirs.SecurityControlField.from_bytes(bytes((octet,)))
        assert (ours.suite, ours.authenticated, ours.encrypted) == (
            their.security_suite,
            their.authenticated,
            their.encrypted,
        )
        assert (ours.broadcast_key, ours.compressed) == (their.broadcast_key, their.compressed)
        assert bytes((ours.to_byte(),)) == their.to_bytes() == bytes((octet,))


plain_apdus = st.builds(
    lambda tag, body: bytes((tag,)) + body,
    st.sampled_from([0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7]),
    st.binary(max_size=200),
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, title=titles, ic=counters, plain=plain_apdus)
def test_general_glo_ciphering_against_theirs(
    ek: bytes, ak: bytes, title: bytes, ic: int, plain: bytes
) -> None:
    keys, system_title = SecurityKeys(ek, ak), SystemTitle(title)
    ours = protect(plain, system_title, ic, keys, general=True)
    encoded = ours.to_bytes()

    their_apdu = their_xdlms.GeneralGlobalCipher.from_bytes(encoded)
    assert bytes(their_apdu.system_title) == title
    assert their_apdu.invocation_counter == ic
    assert their_apdu.to_plain_apdu(ek, ak) == plain
    if len(ours.protected) + 5 < 0x80:
        assert their_apdu.to_bytes() == encoded

    # And theirs into ours: their encryption in their APDU, read and opened by us.
    their_text = theirs.encrypt(
        their_control(AUTHENTICATED_AND_ENCRYPTED), title, ic, ek, plain, ak
    )
    their_encoded = their_xdlms.GeneralGlobalCipher(
        system_title=title,
        security_control=their_control(AUTHENTICATED_AND_ENCRYPTED),
        invocation_counter=ic,
        ciphered_text=their_text,
    ).to_bytes()
    if len(their_text) + 5 < 0x80:
        assert unprotect(decode_ciphered_apdu(their_encoded), system_title, keys) == plain


INITIATE_REQUEST = bytes.fromhex("01 00 00 00 06 5F1F04 00 00181D FFFF")
INITIATE_RESPONSE = bytes.fromhex("08 00 06 5F1F04 00 00101D 0400 0007")


@settings(max_examples=EXAMPLES, deadline=None)
@given(ek=keys_16, ak=keys_16, title=titles, ic=counters)
def test_glo_initiate_request_and_response_against_theirs(
    ek: bytes, ak: bytes, title: bytes, ic: int
) -> None:
    keys, system_title = SecurityKeys(ek, ak), SystemTitle(title)
    sc = their_control(AUTHENTICATED_AND_ENCRYPTED)
    for plain, their_type, tag in (
        (
            INITIATE_REQUEST,
            their_xdlms.GlobalCipherInitiateRequest,
            CipheredTag.GLO_INITIATE_REQUEST,
        ),
        (
            INITIATE_RESPONSE,
            their_xdlms.GlobalCipherInitiateResponse,
            CipheredTag.GLO_INITIATE_RESPONSE,
        ),
    ):
        ours = protect(plain, system_title, ic, keys)
        assert ours.tag is tag
        their_apdu = their_type(sc, ic, theirs.encrypt(sc, title, ic, ek, plain, ak))
        assert their_apdu.to_bytes() == ours.to_bytes()
        assert their_type.from_bytes(ours.to_bytes()) == their_apdu
        assert decode_ciphered_apdu(their_apdu.to_bytes()) == CipheredApdu(
            tag, AUTHENTICATED_AND_ENCRYPTED, ic, their_apdu.ciphered_text
        )


CLIENT_TITLE = bytes.fromhex("5357590000000001")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
EXAMPLE_KEYS = SecurityKeys(bytes(range(16)), bytes(range(0xD0, 0xE0)))
THEIR_SC = their_control(AUTHENTICATED_AND_ENCRYPTED)


def test_ciphered_hls_aarq_equals_theirs_both_ways() -> None:
    glo_initiate = protect(INITIATE_REQUEST, SystemTitle(CLIENT_TITLE), 1, EXAMPLE_KEYS)
    ours = Aarq(
        glo_initiate,
        ApplicationContext.LOGICAL_NAME_CIPHERED,
        Mechanism.HLS_GMAC,
        authentication_value=b"C" * 16,
        calling_ap_title=CLIENT_TITLE,
    )
    theirs = their_acse.ApplicationAssociationRequest(
        ciphered=True,
        system_title=CLIENT_TITLE,
        authentication=their_enums.AuthenticationMechanism.HLS_GMAC,
        authentication_value=b"C" * 16,
        user_information=their_acse.UserInformation(
            their_xdlms.GlobalCipherInitiateRequest(THEIR_SC, 1, glo_initiate.protected)
        ),
    )
    assert ours.to_bytes() == theirs.to_bytes()
    assert decode_aarq(theirs.to_bytes()) == ours
    decoded = decode_aarq(ours.to_bytes()).initiate_request
    assert isinstance(decoded, CipheredApdu)
    assert unprotect(decoded, SystemTitle(CLIENT_TITLE), EXAMPLE_KEYS) == INITIATE_REQUEST


def test_ciphered_hls_aare_equals_theirs_both_ways() -> None:
    glo_initiate = protect(INITIATE_RESPONSE, SystemTitle(METER_TITLE), 9, EXAMPLE_KEYS)
    ours = Aare(
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.NULL,
        glo_initiate,
        ApplicationContext.LOGICAL_NAME_CIPHERED,
        Mechanism.HLS_GMAC,
        authentication_value=b"S" * 16,
        responding_ap_title=METER_TITLE,
    )
    theirs = their_acse.ApplicationAssociationResponse(
        result=their_enums.AssociationResult.ACCEPTED,
        result_source_diagnostics=their_enums.AcseServiceUserDiagnostics.NULL,
        ciphered=True,
        authentication=their_enums.AuthenticationMechanism.HLS_GMAC,
        authentication_value=b"S" * 16,
        system_title=METER_TITLE,
        user_information=their_acse.UserInformation(
            their_xdlms.GlobalCipherInitiateResponse(THEIR_SC, 9, glo_initiate.protected)
        ),
    )
    assert ours.to_bytes() == theirs.to_bytes()
    assert decode_aare(theirs.to_bytes()) == ours
    still_ciphered = decode_aare(ours.to_bytes()).raise_for_result()
    assert isinstance(still_ciphered, CipheredApdu)
    assert unprotect(still_ciphered, SystemTitle(METER_TITLE), EXAMPLE_KEYS) == INITIATE_RESPONSE
