"""Hypothesis strategies for DLMS Data values, shared by the dlms unit tests."""

from hypothesis import strategies as st

from dlms import (
    Array,
    BitString,
    Boolean,
    CosemDateTime,
    Data,
    DateTime,
    DoubleLong,
    DoubleLongUnsigned,
    Enumerated,
    Integer,
    Long,
    Long64,
    Long64Unsigned,
    LongUnsigned,
    NullData,
    OctetString,
    Structure,
    Unsigned,
    VisibleString,
)
from dlms.cosem_time import ClockStatus


def _signed(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _unsigned(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


# Integers and octet-strings: the types dlms-cosem 21.3.2 can both encode and decode.
CROSS_CHECKABLE_SCALARS: st.SearchStrategy[Data] = st.one_of(
    _signed(8).map(Integer),
    _signed(16).map(Long),
    _signed(32).map(DoubleLong),
    _signed(64).map(Long64),
    _unsigned(8).map(Unsigned),
    _unsigned(16).map(LongUnsigned),
    _unsigned(32).map(DoubleLongUnsigned),
    _unsigned(64).map(Long64Unsigned),
    _unsigned(8).map(Enumerated),
    st.binary(max_size=300).map(OctetString),
)

cosem_date_times = st.builds(
    CosemDateTime,
    year=st.integers(0, 0xFFFF),
    month=_unsigned(8),
    day=_unsigned(8),
    hour=_unsigned(8),
    minute=_unsigned(8),
    second=_unsigned(8),
    hundredths=_unsigned(8),
    day_of_week=_unsigned(8),
    deviation_min=_signed(16),
    clock_status=_unsigned(8).map(ClockStatus),
)

bit_strings = st.lists(st.booleans(), max_size=40).map(BitString.from_bits)

SCALARS: st.SearchStrategy[Data] = st.one_of(
    CROSS_CHECKABLE_SCALARS,
    st.just(NullData()),
    st.booleans().map(Boolean),
    st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=40).map(VisibleString),
    bit_strings,
    cosem_date_times.map(DateTime),
)


def _containers(children: st.SearchStrategy[Data]) -> st.SearchStrategy[Data]:
    items = st.lists(children, max_size=5).map(tuple)
    return st.one_of(items.map(Structure), items.map(Array))


data_values: st.SearchStrategy[Data] = st.recursive(SCALARS, _containers, max_leaves=25)

structures_of_cross_checkable: st.SearchStrategy[Data] = st.recursive(
    CROSS_CHECKABLE_SCALARS,
    lambda children: st.lists(children, max_size=5).map(tuple).map(Structure),
    max_leaves=20,
)
