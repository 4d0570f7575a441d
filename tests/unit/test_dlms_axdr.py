"""A-XDR round trips, and decoders that fail only with DlmsDecodeError on radio garbage."""

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlms import (
    Array,
    BitString,
    ClockStatus,
    CosemDateTime,
    Data,
    DecodeLimits,
    DlmsDecodeError,
    Integer,
    OctetString,
    Structure,
    VisibleString,
    decode_apdu,
    decode_data,
    encode_data,
)
from tests.support.dlms_strategies import cosem_date_times, data_values
from tests.unit.test_dlms_vectors import VECTORS


@settings(max_examples=300, deadline=None)
@given(data_values)
def test_encode_then_decode_is_identity(value: Data) -> None:
    assert decode_data(encode_data(value)) == value


@settings(max_examples=200, deadline=None)
@given(cosem_date_times)
def test_any_twelve_date_time_bytes_survive_a_round_trip(value: CosemDateTime) -> None:
    assert CosemDateTime.from_bytes(value.to_bytes()) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_only_decode_error(raw: bytes) -> None:
    for decode in (decode_data, decode_apdu):
        with contextlib.suppress(DlmsDecodeError):
            decode(raw)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(VECTORS)), st.data())
def test_corrupted_pinned_apdus_decode_or_raise_only_decode_error(
    name: str, data: st.DataObject
) -> None:
    raw = bytearray.fromhex(VECTORS[name][0])
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DlmsDecodeError):
        decode_apdu(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(data_values, st.data())
def test_every_truncation_of_valid_data_is_a_decode_error(value: Data, data: st.DataObject) -> None:
    raw = encode_data(value)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DlmsDecodeError):
        decode_data(raw[:cut])


@pytest.mark.parametrize("name", list(VECTORS))
def test_every_truncation_of_a_pinned_apdu_is_a_decode_error(name: str) -> None:
    raw = bytes.fromhex(VECTORS[name][0])
    for cut in range(len(raw)):
        with pytest.raises(DlmsDecodeError):
            decode_apdu(raw[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(DlmsDecodeError, match="unexpected bytes"):
        decode_data(encode_data(Integer(1)) + b"\x00")


def test_length_beyond_the_buffer_is_refused_with_its_offset() -> None:
    with pytest.raises(DlmsDecodeError) as caught:
        decode_data(bytes.fromhex("02 02 09 82 FF FF 00"))
    assert "needs 65535 bytes" in caught.value.reason
    assert caught.value.offset == 6


def test_element_count_beyond_the_buffer_is_refused_before_looping() -> None:
    with pytest.raises(DlmsDecodeError, match="element count"):
        decode_data(bytes.fromhex("01 84 7F FF FF FF 00"))


def test_element_count_beyond_the_bound_is_refused() -> None:
    raw = encode_data(Array(tuple(Integer(0) for _ in range(10))))
    assert len(decode_data(raw, DecodeLimits(max_elements=10)).items) == 10  # type: ignore[union-attr]
    with pytest.raises(DlmsDecodeError, match="element count 10"):
        decode_data(raw, DecodeLimits(max_elements=9))


def test_nesting_deeper_than_the_bound_is_a_decode_error_not_recursion() -> None:
    depth = 100_000  # far past Python's recursion limit
    raw = b"\x02\x01" * depth + b"\x00"
    with pytest.raises(DlmsDecodeError, match="nested deeper than 16"):
        decode_data(raw)
    nested: Data = Integer(1)
    for _ in range(16):
        nested = Structure((nested,))
    assert decode_data(encode_data(nested)) == nested


def test_too_many_length_octets_are_refused() -> None:
    with pytest.raises(DlmsDecodeError, match="length octets"):
        decode_data(bytes.fromhex("09 85 00 00 00 00 01 00"))


def test_unknown_tag_is_refused() -> None:
    with pytest.raises(DlmsDecodeError, match="unsupported data tag 99"):
        decode_data(b"\x63\x00")


def test_long_octet_string_uses_the_multi_byte_length() -> None:
    assert encode_data(OctetString(bytes(200)))[:3] == bytes.fromhex("09 81 C8")
    assert encode_data(OctetString(bytes(300)))[:4] == bytes.fromhex("09 82 01 2C")


def test_bit_string_length_counts_bits() -> None:
    value = BitString.from_bits([True, False, True, True, False, False, False, False, True])
    assert encode_data(value) == bytes.fromhex("04 09 B0 80")
    assert decode_data(bytes.fromhex("04 09 B0 80")) == value
    assert value.bits[:4] == (True, False, True, True)


def test_non_ascii_visible_string_is_refused_both_ways() -> None:
    with pytest.raises(ValueError):
        VisibleString("café")
    with pytest.raises(DlmsDecodeError, match="ASCII"):
        decode_data(bytes.fromhex("0A 01 E9"))


@pytest.mark.parametrize("cls, value", [(Integer, 128), (Integer, -129)])
def test_out_of_range_integers_cannot_be_built(cls: type[Integer], value: int) -> None:
    with pytest.raises(ValueError):
        cls(value)


def test_date_time_carries_deviation_and_clock_status() -> None:
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    moment = dt.datetime(2026, 12, 1, 9, 30, 15, 500_000, tzinfo=ist)

    value = CosemDateTime.from_datetime(moment, ClockStatus.DOUBTFUL_VALUE)
    assert value.to_bytes() == bytes.fromhex("07 EA 0C 01 FF 09 1E 0F 32 FE B6 02")
    assert value.to_datetime() == moment
    assert CosemDateTime.from_bytes(value.to_bytes()).clock_status is ClockStatus.DOUBTFUL_VALUE


def test_wildcard_date_time_decodes_but_is_not_a_moment() -> None:
    value = CosemDateTime.from_bytes(bytes.fromhex("FF FF FF FF FF 00 00 00 00 80 00 FF"))
    assert value.year == 0xFFFF
    with pytest.raises(ValueError):
        value.to_datetime()
