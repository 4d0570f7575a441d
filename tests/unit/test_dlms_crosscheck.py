"""Our encodings against dlms-cosem 21.3.2 (MIT), an independent implementation.

Where dlms-cosem 21.3.2 cannot do something, the test says so instead of faking it:
- it cannot encode an array (DataArray.to_bytes appends bytes to a bytearray: TypeError),
  null-data, a boolean, a visible-string or a date-time (tag 25) (no value_to_bytes), nor a
  GET-Response-Normal (same append bug); for those only "their decoder reads our bytes" runs;
- it cannot decode a visible-string or a bit-string at all, and it writes a bit-string's length
  in octets where A-XDR counts bits, so bit-strings and visible-strings are not cross-checked;
- it has no RLRQ/RLRE reason other than through the enums below, no SET/ACTION with blocks, and
  ConfirmedServiceError.to_bytes always writes the "initiate" service.
"""

import datetime as dt

import pytest
from dlms_cosem import cosem as their_cosem
from dlms_cosem import dlms_data as their_data
from dlms_cosem import enumerations as their_enums
from dlms_cosem import time as their_time
from dlms_cosem.cosem.capture_object import CaptureObject as TheirCaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor as TheirRangeDescriptor
from dlms_cosem.protocol import acse as their_acse
from dlms_cosem.protocol import xdlms as their_xdlms
from hypothesis import given, settings

from dlms import (
    Aare,
    Aarq,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    Array,
    AssociationResult,
    AttributeDescriptor,
    Boolean,
    ConfirmedService,
    ConfirmedServiceError,
    Conformance,
    CosemDateTime,
    Data,
    DataAccessResult,
    DateTime,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithDatablock,
    InitiateRequest,
    InitiateResponse,
    Integer,
    InvokeIdAndPriority,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    Mechanism,
    MethodDescriptor,
    NullData,
    OctetString,
    RangeDescriptor,
    Rlre,
    Rlrq,
    ServiceError,
    ServiceErrorClass,
    SetRequestNormal,
    SetResponseNormal,
    StateError,
    Structure,
    Unsigned,
    decode_aare,
    decode_aarq,
    decode_apdu,
    decode_data,
    decode_rlre,
    decode_rlrq,
    encode_data,
)
from dlms.enums import ReleaseRequestReason, ReleaseResponseReason
from dlms.obis import BLOCK_LOAD_PROFILE, CLOCK, DISCONNECT_CONTROL
from tests.support.dlms_strategies import structures_of_cross_checkable

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
CONFORMANCE = Conformance(0x401E5D)
THEIR_CONFORMANCE = their_xdlms.Conformance.from_bytes(bytes.fromhex("00401E5D"))
SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
INVOKE = InvokeIdAndPriority(1, True, True)
THEIR_INVOKE = their_xdlms.InvokeIdAndPriority(1, True, True)


def their_equivalent(value: Data) -> their_data.BaseDlmsData:
    """dlms-cosem's object for the types it can encode."""
    simple: dict[type, type[their_data.BaseDlmsData]] = {
        Integer: their_data.IntegerData,
        Long: their_data.LongData,
        Unsigned: their_data.UnsignedIntegerData,
        LongUnsigned: their_data.UnsignedLongData,
        Enumerated: their_data.EnumData,
        DoubleLongUnsigned: their_data.DoubleLongUnsignedData,
        OctetString: their_data.OctetStringData,
        DoubleLong: their_data.DoubleLongData,
        Long64: their_data.Long64Data,
        Long64Unsigned: their_data.UnsignedLong64Data,
    }
    if isinstance(value, NullData):
        return their_data.NullData(None)
    if isinstance(value, Structure):
        return their_data.DataStructure([their_equivalent(item) for item in value.items])
    return simple[type(value)](value.value)  # type: ignore[union-attr]


def python_value(value: Data) -> object:
    """What dlms-cosem's parser gives back for our value (its to_python)."""
    if isinstance(value, NullData):
        return None
    if isinstance(value, Structure | Array):
        return [python_value(item) for item in value.items]
    if isinstance(value, DateTime):
        return value.value.to_datetime()
    return value.value  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(structures_of_cross_checkable)
def test_data_bytes_equal_theirs_and_each_side_reads_the_other(value: Data) -> None:
    theirs = their_equivalent(value).to_bytes()
    assert encode_data(value) == theirs
    assert decode_data(theirs) == value
    parsed = their_data.DlmsDataParser().parse(encode_data(value))
    assert [item.to_python() for item in parsed] == [python_value(value)]


@pytest.mark.parametrize(
    "value",
    [
        Array((Unsigned(1), Unsigned(2))),
        Array((Structure((OctetString(b"\x00" * 12), DoubleLongUnsigned(5))),) * 3),
        Array(tuple(LongUnsigned(i) for i in range(200))),  # count needs 0x81 0xC8
        Structure((Boolean(True), Boolean(False), Array(()), NullData())),
        DateTime(CosemDateTime.from_datetime(dt.datetime(2026, 3, 1, 12, 15, tzinfo=IST))),
    ],
    ids=["array", "array of structures", "long array", "booleans, null", "date-time tag 25"],
)
def test_their_decoder_reads_our_arrays_booleans_and_date_times(value: Data) -> None:
    (parsed,) = their_data.DlmsDataParser().parse(encode_data(value))
    theirs = parsed.to_python()
    if isinstance(value, DateTime):
        theirs, _clock_status = theirs  # their date-time reads as (datetime, status)
    assert theirs == python_value(value)


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 12, 1, 23, 59, 58, 990_000, tzinfo=IST),
        dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 6, 30, 6, 30, tzinfo=dt.timezone(-dt.timedelta(hours=3))),
        dt.datetime(2026, 2, 28, 10, 0),  # naive: deviation "not specified"
    ],
)
def test_date_time_octets_equal_theirs_and_read_back(moment: dt.datetime) -> None:
    ours = CosemDateTime.from_datetime(moment)
    assert ours.to_bytes() == their_time.datetime_to_bytes(moment)
    assert CosemDateTime.from_bytes(ours.to_bytes()).to_datetime() == moment
    if moment.tzinfo is not None:
        their_moment, _ = their_time.datetime_from_bytes(ours.to_bytes())
        if moment.utcoffset() == dt.timedelta(0):
            # dlms-cosem reads deviation 0 as "no zone" (a falsy check), so UTC comes back
            # naive there; the wall-clock fields still agree.
            assert their_moment == moment.replace(tzinfo=None)
        else:
            assert their_moment == moment
            assert their_moment.utcoffset() == moment.utcoffset()


def test_ist_deviation_is_minus_330_as_the_blue_book_and_dlms_cosem_read_it() -> None:
    raw = CosemDateTime.from_datetime(dt.datetime(2026, 1, 1, tzinfo=IST)).to_bytes()
    assert raw[9:11] == (-330).to_bytes(2, "big", signed=True)


def their_aarq(**kwargs: object) -> bytes:
    initiate = their_xdlms.InitiateRequest(proposed_conformance=THEIR_CONFORMANCE)
    user_information = their_acse.UserInformation(initiate)
    return their_acse.ApplicationAssociationRequest(  # type: ignore[no-any-return]
        user_information=user_information, **kwargs
    ).to_bytes()


def test_aarq_with_lls_password_equals_theirs() -> None:
    ours = Aarq(
        InitiateRequest(CONFORMANCE), mechanism=Mechanism.LLS, authentication_value=b"ABCDEFGH"
    )
    theirs = their_aarq(
        authentication=their_enums.AuthenticationMechanism.LLS, authentication_value=b"ABCDEFGH"
    )
    assert ours.to_bytes() == theirs
    assert decode_aarq(theirs) == ours


def test_aarq_with_hls_gmac_system_title_and_challenge_equals_theirs() -> None:
    challenge = bytes(range(16))
    ours = Aarq(
        InitiateRequest(CONFORMANCE),
        mechanism=Mechanism.HLS_GMAC,
        authentication_value=challenge,
        calling_ap_title=SYSTEM_TITLE,
    )
    theirs = their_aarq(
        authentication=their_enums.AuthenticationMechanism.HLS_GMAC,
        authentication_value=challenge,
        system_title=SYSTEM_TITLE,
    )
    assert ours.to_bytes() == theirs
    assert decode_aarq(theirs) == ours


def test_their_aarq_decoder_reads_ours() -> None:
    # Their InitiateRequest decoder drops the first conformance octet (it slices the bit
    # string past its unused-bits byte twice), so the block used here has none there.
    conformance = Conformance.GET | Conformance.SET | Conformance.ACTION
    ours = Aarq(
        InitiateRequest(conformance, 0x0400), mechanism=Mechanism.LLS, authentication_value=b"pw"
    )
    theirs = their_acse.ApplicationAssociationRequest.from_bytes(ours.to_bytes())
    assert theirs.authentication == their_enums.AuthenticationMechanism.LLS
    assert theirs.authentication_value == b"pw"
    assert theirs.user_information.content.client_max_receive_pdu_size == 0x0400
    assert theirs.user_information.content.proposed_conformance == their_xdlms.Conformance(
        get=True, set=True, action=True
    )


AARES = {
    "accepted": (
        Aare(
            AssociationResult.ACCEPTED,
            AcseServiceUserDiagnostic.NULL,
            InitiateResponse(Conformance(0x00101D), 0x0400),
        ),
        dict(
            result=their_enums.AssociationResult.ACCEPTED,
            result_source_diagnostics=their_enums.AcseServiceUserDiagnostics.NULL,
            user_information=their_acse.UserInformation(
                their_xdlms.InitiateResponse(
                    their_xdlms.Conformance.from_bytes(bytes.fromhex("0000101D")), 0x0400
                )
            ),
        ),
    ),
    "rejected, authentication failure": (
        Aare(
            AssociationResult.REJECTED_PERMANENT,
            AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE,
            None,
        ),
        dict(
            result=their_enums.AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostics=their_enums.AcseServiceUserDiagnostics.AUTHENTICATION_FAILED,
        ),
    ),
    "rejected, no common ACSE version": (
        Aare(
            AssociationResult.REJECTED_TRANSIENT,
            AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION,
            None,
        ),
        dict(
            result=their_enums.AssociationResult.REJECTED_TRANSIENT,
            result_source_diagnostics=their_enums.AcseServiceProviderDiagnostics.NO_COMMON_ACSE_VERSION,
        ),
    ),
    "rejected, initiate error": (
        Aare(
            AssociationResult.REJECTED_PERMANENT,
            AcseServiceUserDiagnostic.NO_REASON_GIVEN,
            ConfirmedServiceError(ConfirmedService.INITIATE, ServiceErrorClass.INITIATE, 1),
        ),
        dict(
            result=their_enums.AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostics=their_enums.AcseServiceUserDiagnostics.NO_REASON_GIVEN,
            user_information=their_acse.UserInformation(
                their_xdlms.ConfirmedServiceError(their_enums.InitiateError.DLMS_VERSION_TOO_LOW)
            ),
        ),
    ),
    "accepted HLS-GMAC with StoC": (
        Aare(
            AssociationResult.ACCEPTED,
            AcseServiceUserDiagnostic.NULL,
            InitiateResponse(Conformance(0x00101D), 0x0400),
            mechanism=Mechanism.HLS_GMAC,
            authentication_value=b"S" * 16,
            responding_ap_title=SYSTEM_TITLE,
        ),
        dict(
            result=their_enums.AssociationResult.ACCEPTED,
            result_source_diagnostics=their_enums.AcseServiceUserDiagnostics.NULL,
            authentication=their_enums.AuthenticationMechanism.HLS_GMAC,
            authentication_value=b"S" * 16,
            system_title=SYSTEM_TITLE,
            user_information=their_acse.UserInformation(
                their_xdlms.InitiateResponse(
                    their_xdlms.Conformance.from_bytes(bytes.fromhex("0000101D")), 0x0400
                )
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", list(AARES))
def test_aare_equals_theirs_and_each_side_reads_the_other(name: str) -> None:
    ours, their_fields = AARES[name]
    theirs = their_acse.ApplicationAssociationResponse(**their_fields)
    assert ours.to_bytes() == theirs.to_bytes()
    assert decode_aare(theirs.to_bytes()) == ours
    read_back = their_acse.ApplicationAssociationResponse.from_bytes(ours.to_bytes())
    assert read_back.result == theirs.result
    assert read_back.result_source_diagnostics == theirs.result_source_diagnostics


def test_release_request_and_response_equal_theirs() -> None:
    theirs_rq = their_acse.ReleaseRequest(their_enums.ReleaseRequestReason.NORMAL).to_bytes()
    theirs_re = their_acse.ReleaseResponse(their_enums.ReleaseResponseReason.NORMAL).to_bytes()
    assert Rlrq(ReleaseRequestReason.NORMAL).to_bytes() == theirs_rq
    assert Rlre(ReleaseResponseReason.NORMAL).to_bytes() == theirs_re
    assert decode_rlrq(theirs_rq) == Rlrq(ReleaseRequestReason.NORMAL)
    assert decode_rlre(theirs_re) == Rlre(ReleaseResponseReason.NORMAL)


def their_attribute(class_id: int, obis: object, attribute: int) -> their_cosem.CosemAttribute:
    logical_name = their_cosem.Obis.from_bytes(obis.to_bytes())  # type: ignore[attr-defined]
    return their_cosem.CosemAttribute(their_enums.CosemInterface(class_id), logical_name, attribute)


def test_get_with_range_selective_access_equals_theirs() -> None:
    start = dt.datetime(2026, 3, 1, 0, 0, tzinfo=IST)
    end = dt.datetime(2026, 3, 1, 23, 45, tzinfo=IST)
    ours = GetRequestNormal(
        AttributeDescriptor(7, BLOCK_LOAD_PROFILE, 2),
        RangeDescriptor(
            CosemDateTime.from_datetime(start), CosemDateTime.from_datetime(end)
        ).to_access(),
    )
    theirs = their_xdlms.GetRequestNormal(
        their_attribute(7, BLOCK_LOAD_PROFILE, 2),
        THEIR_INVOKE,
        TheirRangeDescriptor(TheirCaptureObject(their_attribute(8, CLOCK, 2)), start, end),
    ).to_bytes()
    assert ours.to_bytes() == theirs
    assert decode_apdu(theirs) == ours
    assert ours.access is not None
    assert RangeDescriptor.from_access(ours.access).to_value.to_datetime() == end


XDLMS_PAIRS = {
    "get next": (GetRequestNext(3), their_xdlms.GetRequestNext(3, THEIR_INVOKE)),
    "get error": (
        GetResponseNormal(DataAccessResult.READ_WRITE_DENIED),
        their_xdlms.GetResponseNormalWithError(
            their_enums.DataAccessResult.READ_WRITE_DENIED, THEIR_INVOKE
        ),
    ),
    "get block": (
        GetResponseWithDatablock(False, 1, b"\x01\x02\x02\x02"),
        their_xdlms.GetResponseWithBlock(b"\x01\x02\x02\x02", 1, THEIR_INVOKE),
    ),
    "get long block": (
        GetResponseWithDatablock(False, 7, bytes(300)),
        their_xdlms.GetResponseWithBlock(bytes(300), 7, THEIR_INVOKE),
    ),
    "get last block": (
        GetResponseWithDatablock(True, 2, b"\x11\x05"),
        their_xdlms.GetResponseLastBlock(b"\x11\x05", 2, THEIR_INVOKE),
    ),
    "get last block error": (
        GetResponseWithDatablock(True, 2, DataAccessResult.LONG_GET_ABORTED),
        their_xdlms.GetResponseLastBlockWithError(
            their_enums.DataAccessResult.LONG_GET_ABORTED, 2, THEIR_INVOKE
        ),
    ),
    "set control_mode": (
        SetRequestNormal(AttributeDescriptor(70, DISCONNECT_CONTROL, 4), Enumerated(4)),
        their_xdlms.SetRequestNormal(
            their_attribute(70, DISCONNECT_CONTROL, 4), b"\x16\x04", None, THEIR_INVOKE
        ),
    ),
    "set response": (
        SetResponseNormal(DataAccessResult.READ_WRITE_DENIED),
        their_xdlms.SetResponseNormal(their_enums.DataAccessResult.READ_WRITE_DENIED, THEIR_INVOKE),
    ),
    "action without parameters": (
        ActionRequestNormal(MethodDescriptor(70, DISCONNECT_CONTROL, 2)),
        their_xdlms.ActionRequestNormal(
            their_cosem.CosemMethod(
                their_enums.CosemInterface.DISCONNECT_CONTROL, their_cosem.Obis(0, 0, 96, 3, 10), 2
            ),
            None,
            THEIR_INVOKE,
        ),
    ),
    "action refused": (
        ActionResponseNormal(ActionResult.READ_WRITE_DENIED),
        their_xdlms.ActionResponseNormal(
            their_enums.ActionResultStatus.READ_WRITE_DENIED, THEIR_INVOKE
        ),
    ),
    "action with return data": (
        ActionResponseNormal(ActionResult.SUCCESS, OctetString(b"\x10" * 17)),
        their_xdlms.ActionResponseNormalWithData(
            their_enums.ActionResultStatus.SUCCESS, b"\x09\x11" + b"\x10" * 17, THEIR_INVOKE
        ),
    ),
    "action with return error": (
        ActionResponseNormal(ActionResult.SUCCESS, DataAccessResult.OBJECT_UNAVAILABLE),
        their_xdlms.ActionResponseNormalWithError(
            their_enums.ActionResultStatus.SUCCESS,
            their_enums.DataAccessResult.OBJECT_UNAVAILABLE,
            THEIR_INVOKE,
        ),
    ),
    "exception": (
        ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.OPERATION_NOT_POSSIBLE),
        their_xdlms.ExceptionResponse(
            their_enums.StateException.SERVICE_NOT_ALLOWED,
            their_enums.ServiceException.OPERATION_NOT_POSSIBLE,
        ),
    ),
    "confirmed service error": (
        ConfirmedServiceError(ConfirmedService.INITIATE, ServiceErrorClass.INITIATE, 2),
        their_xdlms.ConfirmedServiceError(their_enums.InitiateError.INCOMPATIBLE_CONFORMANCE),
    ),
}


@pytest.mark.parametrize("name", list(XDLMS_PAIRS))
def test_xdlms_apdu_equals_theirs_and_we_read_theirs(name: str) -> None:
    ours, theirs = XDLMS_PAIRS[name]
    assert ours.to_bytes() == theirs.to_bytes()
    assert decode_apdu(theirs.to_bytes()) == ours
    assert type(theirs).from_bytes(ours.to_bytes()) == theirs


@pytest.mark.parametrize(
    "value", [Enumerated(1), Structure((LongUnsigned(230), Integer(-1))), Array((Boolean(True),))]
)
def test_their_get_response_decoder_reads_our_normal_responses(value: Data) -> None:
    # Their GetResponseNormal.to_bytes is broken in 21.3.2, so only this direction.
    theirs = their_xdlms.GetResponseFactory.from_bytes(GetResponseNormal(value).to_bytes())
    assert theirs.data == encode_data(value)
    assert theirs.invoke_id_and_priority == THEIR_INVOKE
