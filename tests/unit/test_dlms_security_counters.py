"""Invocation counters: the sender never reuses one across restarts; the receiver's guard."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlms.errors import InvocationCounterExhausted, ReplayedInvocationCounter
from dlms.security import (
    AUTHENTICATED_AND_ENCRYPTED,
    AUTHENTICATED_ONLY,
    MAX_INVOCATION_COUNTER,
    InvocationCounterGuard,
    InvocationCounterSource,
    SecurityControl,
    SecurityKeys,
    SystemTitle,
    decode_ciphered_apdu,
    protect,
    unprotect,
)


class FakeStore:
    """Stands in for the gateway's durable store: the last ceiling written."""

    def __init__(self, ceiling: int = 0) -> None:
        self.ceiling = ceiling
        self.writes: list[int] = []

    def __call__(self, ceiling: int) -> None:
        self.writes.append(ceiling)
        self.ceiling = ceiling


def test_counters_start_after_the_persisted_ceiling_and_reserve_in_blocks() -> None:
    store = FakeStore()
    source = InvocationCounterSource(store.ceiling, store, block_size=3)
    assert [source.issue() for _ in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert store.writes == [3, 6, 9]


@settings(max_examples=50, deadline=None)
@given(
    block_size=st.integers(min_value=1, max_value=20),
    runs=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=6),
)
def test_restarts_never_reuse_a_counter(block_size: int, runs: list[int]) -> None:
    # Each run issues some counters then "crashes"; the next starts from what was stored.
    store = FakeStore()
    issued: list[int] = []
    for count in runs:
        source = InvocationCounterSource(store.ceiling, store, block_size)
        issued += [source.issue() for _ in range(count)]
        assert all(counter <= store.ceiling for counter in issued)
    assert issued == sorted(set(issued))


def test_failed_reservation_hands_out_nothing() -> None:
    def disk_full(ceiling: int) -> None:
        raise OSError("disk full")

    source = InvocationCounterSource(10, disk_full)
    with pytest.raises(OSError, match="disk full"):
        source.issue()
    assert source.next_counter == 11


def test_exhaustion_refuses_instead_of_wrapping() -> None:
    store = FakeStore(MAX_INVOCATION_COUNTER - 2)
    source = InvocationCounterSource(store.ceiling, store, block_size=1000)
    assert [source.issue(), source.issue()] == [MAX_INVOCATION_COUNTER - 1, MAX_INVOCATION_COUNTER]
    assert store.writes == [MAX_INVOCATION_COUNTER]
    with pytest.raises(InvocationCounterExhausted):
        source.issue()


def test_skip_past_a_counter_the_meter_has_seen_never_goes_back() -> None:
    store = FakeStore()
    source = InvocationCounterSource(0, store, block_size=10)
    source.skip_past(500)
    assert source.issue() == 501
    assert store.ceiling >= 501
    source.skip_past(100)
    assert source.issue() == 502


def test_guard_check_records_nothing_and_accept_records() -> None:
    guard = InvocationCounterGuard()
    guard.check(0)
    assert guard.last_accepted is None
    guard.accept(0)
    guard.accept(5)
    for stale in (0, 4, 5):
        with pytest.raises(ReplayedInvocationCounter):
            guard.check(stale)
    assert guard.last_accepted == 5


plain_apdus = st.builds(
    lambda tag, body: bytes((tag,)) + body,
    st.sampled_from([0x01, 0x08, 0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7]),
    st.binary(max_size=400),
)


@settings(max_examples=100, deadline=None)
@given(
    plain=plain_apdus,
    control=st.sampled_from([AUTHENTICATED_AND_ENCRYPTED, AUTHENTICATED_ONLY]),
    general=st.booleans(),
    title=st.binary(min_size=8, max_size=8),
    first_counter=st.integers(min_value=0, max_value=MAX_INVOCATION_COUNTER - 3),
)
def test_round_trip_through_a_counter_source_and_guard(
    plain: bytes, control: SecurityControl, general: bool, title: bytes, first_counter: int
) -> None:
    keys = SecurityKeys(bytes(range(16)), bytes(range(16, 32)))
    sender = SystemTitle(title)
    source = InvocationCounterSource(first_counter, FakeStore())
    guard = InvocationCounterGuard()
    for _ in range(2):
        apdu = protect(plain, sender, source.issue(), keys, control, general=general)
        received = decode_ciphered_apdu(apdu.to_bytes())
        assert received == apdu
        assert unprotect(received, sender, keys, guard) == plain
    assert guard.last_accepted == first_counter + 2
