"""Published security vectors (Green Book examples, RFC 3394), pinned in both directions.

Sources, since we do not hold the Green Book itself:
- Green Book Table 40 (AES-GCM example, glo-get-request of the clock's time): the
  authenticated-and-encrypted and encrypted ciphertexts are also pinned by dlms-cosem's own
  tests (u9n/dlms-cosem tests/test_security.py, test_encrypt_authenticated); the
  authentication-only tag 06725D910F9221D263877516 and the three complete APDUs come from a
  DLMS security reference quoting Table 40, found through the public code index (repository
  not named by the index). All three agree with each other here.
- The glo-initiate-request example (same keys and title, IC 01234567) as pinned by
  u9n/dlms-cosem tests/test_xdlms/test_initiate.py and by a Go DLMS library's CipherData test.
- Green Book 8.1, 9.2.7.4, Table 43 (HLS mechanism 5 with GMAC) as quoted in a public C unit
  test; the f(StoC) tag is also pinned by u9n/dlms-cosem tests/test_security.py (test_gmac),
  the f(CtoS) tag (FE1466AFB3DBCD4F9389E2B7) by a Java GcmCipherModTest.
- RFC 3394 section 4.1 (128-bit KEK wrapping 128-bit key data).
"""

import pytest

from dlms import (
    ActionRequestNormal,
    Conformance,
    InitiateRequest,
    MethodDescriptor,
    decode_apdu,
)
from dlms._reader import Reader
from dlms.errors import CipheringError
from dlms.initiate import read_initiate_request
from dlms.security import (
    AUTHENTICATED_AND_ENCRYPTED,
    AUTHENTICATED_ONLY,
    SECURITY_SETUP,
    CipheredApdu,
    CipheredTag,
    KeyId,
    SecurityKeys,
    SystemTitle,
    decode_ciphered_apdu,
    hls_gmac_proof,
    key_transfer_request,
    protect,
    unprotect,
    unwrap_key,
    unwrap_key_transfer,
    verify_hls_gmac_proof,
    wrap_key,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Green Book example keys and titles (Tables 40 and 43).
KEYS = SecurityKeys(h("000102030405060708090A0B0C0D0E0F"), h("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"))
SERVER_TITLE = SystemTitle(h("4D4D4D0000BC614E"))
SERVER_IC = 0x01234567
CLIENT_TITLE = SystemTitle(h("4D4D4D0000000001"))
CLIENT_IC = 0x00000001
GET_CLOCK_TIME = h("C0 01 00 00 08 00 00 01 00 00 FF 02 00")

TABLE_40 = {
    "authenticated and encrypted": (
        AUTHENTICATED_AND_ENCRYPTED,
        "C8 1E 30 01234567 411312FF935A47566827C467BC 7D825C3BE4A77C3FCC056B6B",
    ),
    "authenticated only": (
        AUTHENTICATED_ONLY,
        "C8 1E 10 01234567 C0010000080000010000FF0200 06725D910F9221D263877516",
    ),
}


@pytest.mark.parametrize("name", TABLE_40)
def test_green_book_glo_get_request_encodes_to_table_40(name: str) -> None:
    control, expected = TABLE_40[name]
    apdu = protect(GET_CLOCK_TIME, SERVER_TITLE, SERVER_IC, KEYS, control)
    assert apdu.to_bytes() == h(expected)


@pytest.mark.parametrize("name", TABLE_40)
def test_green_book_glo_get_request_decodes_from_table_40(name: str) -> None:
    control, encoded = TABLE_40[name]
    apdu = decode_apdu(h(encoded))
    assert apdu == decode_ciphered_apdu(h(encoded))
    assert isinstance(apdu, CipheredApdu)
    assert (apdu.tag, apdu.security_control, apdu.invocation_counter) == (
        CipheredTag.GLO_GET_REQUEST,
        control,
        SERVER_IC,
    )
    assert unprotect(apdu, SERVER_TITLE, KEYS) == GET_CLOCK_TIME


def test_green_book_encryption_only_example_is_refused() -> None:
    # Table 40's encryption-only form decodes, but nothing authenticates it: refused.
    apdu = decode_ciphered_apdu(h("C8 12 20 01234567 411312FF935A47566827C467BC"))
    with pytest.raises(CipheringError, match="unauthenticated"):
        unprotect(apdu, SERVER_TITLE, KEYS)


GLO_INITIATE_REQUEST = (
    "21 30 30 01234567 801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB204D"
    "39EE6FDB8E356855"
)
INITIATE_WITH_DEDICATED_KEY = h(
    "01 01 10 00112233445566778899AABBCCDDEEFF 00 00 06 5F1F04 00 007E1F 04B0"
)


def test_green_book_glo_initiate_request_both_ways() -> None:
    apdu = protect(INITIATE_WITH_DEDICATED_KEY, SERVER_TITLE, SERVER_IC, KEYS)
    assert apdu.tag is CipheredTag.GLO_INITIATE_REQUEST
    assert apdu.to_bytes() == h(GLO_INITIATE_REQUEST)

    plain = unprotect(decode_ciphered_apdu(h(GLO_INITIATE_REQUEST)), SERVER_TITLE, KEYS)
    assert read_initiate_request(Reader(plain)) == InitiateRequest(
        Conformance(0x007E1F),
        max_receive_pdu_size=0x04B0,
        dedicated_key=h("00112233445566778899AABBCCDDEEFF"),
    )


# Table 43: StoC "P6wRJ21F", CtoS "K56iVagY".
STOC = h("503677524A323146")
CTOS = h("4B35366956616759")
F_STOC = h("10 00000001 1A52FE7DD3E72748973C1E28")
F_CTOS = h("10 01234567 FE1466AFB3DBCD4F9389E2B7")


def test_green_book_hls_gmac_client_proves_f_stoc() -> None:
    assert hls_gmac_proof(STOC, CLIENT_TITLE, CLIENT_IC, KEYS) == F_STOC
    # The meter checks it with the client's system title from the AARQ.
    assert verify_hls_gmac_proof(F_STOC, STOC, CLIENT_TITLE, KEYS) == CLIENT_IC


def test_green_book_hls_gmac_meter_answers_f_ctos() -> None:
    assert hls_gmac_proof(CTOS, SERVER_TITLE, SERVER_IC, KEYS) == F_CTOS
    assert verify_hls_gmac_proof(F_CTOS, CTOS, SERVER_TITLE, KEYS) == SERVER_IC


RFC_3394_KEK = h("000102030405060708090A0B0C0D0E0F")
RFC_3394_KEY = h("00112233445566778899AABBCCDDEEFF")
RFC_3394_WRAPPED = h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")


def test_rfc_3394_section_4_1_both_ways() -> None:
    assert wrap_key(RFC_3394_KEK, RFC_3394_KEY) == RFC_3394_WRAPPED
    assert unwrap_key(RFC_3394_KEK, RFC_3394_WRAPPED) == RFC_3394_KEY


# IC 64 key_transfer: class 0040, 0.0.43.0.0.255, method 2, parameters present, then
# array(1) of structure(2) {enum 0 (global unicast encryption key), octet-string(24)}.
# The layout is IEC 62056-6-2's, as quoted in public meter firmware that parses it
# (array 01, structure 02 02, enum 16, octet-string 09); the wrapped key is RFC 3394's.
KEY_TRANSFER_APDU = h(
    "C3 01 C1 0040 00002B0000FF 02 01"
    "01 01 02 02 16 00 09 18 1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
)


def test_key_transfer_request_both_ways() -> None:
    request = key_transfer_request(RFC_3394_KEK, {KeyId.GLOBAL_UNICAST_ENCRYPTION: RFC_3394_KEY})
    assert request.to_bytes() == KEY_TRANSFER_APDU

    decoded = decode_apdu(KEY_TRANSFER_APDU)
    assert isinstance(decoded, ActionRequestNormal)
    assert decoded.method == MethodDescriptor(64, SECURITY_SETUP, 2)
    assert decoded.parameters is not None
    assert unwrap_key_transfer(RFC_3394_KEK, decoded.parameters) == {
        KeyId.GLOBAL_UNICAST_ENCRYPTION: RFC_3394_KEY
    }
