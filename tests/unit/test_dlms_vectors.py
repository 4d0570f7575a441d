"""Byte vectors from DLMS-NOTES.md (an independent client's encodings), pinned both ways."""

import pytest

from dlms import (
    DLMS_PORT,
    MANAGEMENT_LOGICAL_DEVICE,
    PUBLIC_CLIENT,
    UTILITY_SETTINGS_CLIENT,
    Aarq,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    ApplicationContext,
    AttributeDescriptor,
    Conformance,
    Enumerated,
    GetRequestNormal,
    GetResponseNormal,
    InitiateRequest,
    Integer,
    InvokeIdAndPriority,
    MethodDescriptor,
    Obis,
    WrapperFrame,
    WrapperHeader,
    decode_apdu,
)
from dlms.acse import LLS_MECHANISM_OID, LN_CONTEXT_OID
from dlms.obis import CLOCK, DISCONNECT_CONTROL

DISCONNECT_CONTROL_CLASS = 70
CLOCK_CLASS = 8
REMOTE_DISCONNECT = 1
REMOTE_RECONNECT = 2


def h(text: str) -> bytes:
    return bytes.fromhex(text)


VECTORS = {
    "action remote_disconnect": (
        "C3 01 C1 00 46 00 00 60 03 0A FF 01 01 0F 00",
        ActionRequestNormal(
            MethodDescriptor(DISCONNECT_CONTROL_CLASS, DISCONNECT_CONTROL, REMOTE_DISCONNECT),
            Integer(0),
        ),
    ),
    "action response success": ("C7 01 C1 00 00", ActionResponseNormal(ActionResult.SUCCESS)),
    "get clock time": (
        "C0 01 C1 00 08 00 00 01 00 00 FF 02 00",
        GetRequestNormal(AttributeDescriptor(CLOCK_CLASS, CLOCK, 2)),
    ),
    "get control_state": (
        "C0 01 C1 00 46 00 00 60 03 0A FF 03 00",
        GetRequestNormal(AttributeDescriptor(DISCONNECT_CONTROL_CLASS, DISCONNECT_CONTROL, 3)),
    ),
    "control_state connected": ("C4 01 C1 00 16 01", GetResponseNormal(Enumerated(1))),
    "public client AARQ": (
        "60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 40 1E 5D"
        " FF FF",
        Aarq(InitiateRequest(Conformance(0x401E5D), max_receive_pdu_size=0xFFFF)),
    ),
}


@pytest.mark.parametrize("name", list(VECTORS))
def test_vector_encodes_byte_for_byte(name: str) -> None:
    hex_text, apdu = VECTORS[name]
    assert apdu.to_bytes() == h(hex_text)


@pytest.mark.parametrize("name", list(VECTORS))
def test_vector_decodes_to_the_same_apdu(name: str) -> None:
    hex_text, apdu = VECTORS[name]
    assert decode_apdu(h(hex_text)) == apdu


def test_reconnect_differs_from_disconnect_only_in_the_method_byte() -> None:
    reconnect = ActionRequestNormal(
        MethodDescriptor(DISCONNECT_CONTROL_CLASS, DISCONNECT_CONTROL, REMOTE_RECONNECT),
        Integer(0),
    )
    assert reconnect.to_bytes() == h("C3 01 C1 00 46 00 00 60 03 0A FF 02 01 0F 00")


def test_invoke_id_and_priority_c1_is_id_1_confirmed_high_priority() -> None:
    assert InvokeIdAndPriority.from_byte(0xC1) == InvokeIdAndPriority(1, True, True)
    assert InvokeIdAndPriority(5, confirmed=True, high_priority=False).to_byte() == 0x45


def test_wrapper_header_client_48_to_server_1_for_15_bytes() -> None:
    header = WrapperHeader(UTILITY_SETTINGS_CLIENT, MANAGEMENT_LOGICAL_DEVICE, 15)
    assert header.to_bytes() == h("00 01 00 30 00 01 00 0F")
    assert WrapperHeader.from_bytes(h("00 01 00 30 00 01 00 0F"), max_apdu_size=15) == header


def test_wrapped_public_aarq_has_the_notes_header() -> None:
    aarq = VECTORS["public client AARQ"][1].to_bytes()
    frame = WrapperFrame(PUBLIC_CLIENT, MANAGEMENT_LOGICAL_DEVICE, aarq)
    assert frame.to_bytes()[:8] == h("00 01 00 10 00 01 00 1F")
    assert DLMS_PORT == 4059


def test_oids_of_the_notes_match_the_pinned_aarq_bytes() -> None:
    # The AARQ vector carries 60 85 74 05 08 01 01; our OID encoder must produce exactly
    # that from the dotted name in DLMS-NOTES, and LLS must differ only in the last arcs.
    from dlms._ber import encode_oid

    assert encode_oid(LN_CONTEXT_OID) == h("60 85 74 05 08 01 01")
    assert encode_oid(LLS_MECHANISM_OID) == h("60 85 74 05 08 02 01")
    assert VECTORS["public client AARQ"][1].application_context is ApplicationContext.LOGICAL_NAME


def test_obis_parses_prints_and_encodes() -> None:
    assert Obis.parse("0.0.96.3.10.255") == DISCONNECT_CONTROL
    assert Obis.parse("0-0:96.3.10.255") == DISCONNECT_CONTROL
    assert str(DISCONNECT_CONTROL) == "0.0.96.3.10.255"
    assert DISCONNECT_CONTROL.to_bytes() == h("00 00 60 03 0A FF")
    with pytest.raises(ValueError):
        Obis.parse("0.0.96.3.10")
    with pytest.raises(ValueError):
        Obis.parse("0.0.96.3.10.256")
