"""Dues arithmetic: money is conserved and never depends on the order entries arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cloud.ledger.dues import EntryKind, EntryView, compute_dues

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(entry_id: int, kind: EntryKind, paise: int, day: int = 0) -> EntryView:
    return EntryView(entry_id, kind, paise, T0 + timedelta(days=day))


entries = st.lists(
    st.tuples(
        st.sampled_from(list(EntryKind)),
        st.integers(min_value=1, max_value=10_000_000),
        st.integers(min_value=0, max_value=400),
        st.booleans(),
    ),
    max_size=40,
).map(
    lambda rows: [
        _entry(
            n,
            kind,
            -paise
            if kind is EntryKind.PAYMENT or (kind is EntryKind.ADJUSTMENT and negative)
            else paise,
            day,
        )
        for n, (kind, paise, day, negative) in enumerate(rows, start=1)
    ]
)


@given(entries)
def test_money_is_conserved(rows: list[EntryView]) -> None:
    dues = compute_dues(rows)
    assert dues.balance_paise == sum(e.amount_paise for e in rows)
    assert dues.outstanding_paise >= 0
    assert dues.reconnection_fee_paise >= 0
    assert dues.credit_paise >= 0
    assert dues.total_payable_paise == 0 or dues.credit_paise == 0


@given(entries, st.randoms())
def test_order_of_arrival_does_not_matter(rows: list[EntryView], rng: object) -> None:
    shuffled = list(rows)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert compute_dues(shuffled) == compute_dues(rows)


def test_fee_is_shown_apart_from_the_bill_and_paid_last() -> None:
    rows = [
        _entry(1, EntryKind.BILL, 123_400, day=0),
        _entry(2, EntryKind.FEE, 35_000, day=30),
        _entry(3, EntryKind.PAYMENT, -100_000, day=31),
    ]
    dues = compute_dues(rows)
    assert (dues.outstanding_paise, dues.reconnection_fee_paise) == (23_400, 35_000)
    assert dues.total_payable_paise == 58_400


def test_overpayment_stays_as_credit() -> None:
    dues = compute_dues([_entry(1, EntryKind.BILL, 50_000), _entry(2, EntryKind.PAYMENT, -80_000)])
    assert dues.total_payable_paise == 0
    assert dues.credit_paise == 30_000
    assert dues.balance_paise == -30_000
