"""Dues from ledger entries: pure arithmetic in integer paise, never floats."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class EntryKind(StrEnum):
    """Kinds of ledger entry; bills and fees are debits, payments credits, adjustments either."""

    BILL = "bill"
    FEE = "fee"
    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class EntryView:
    """The part of a ledger entry that dues depend on. Positive paise are owed."""

    entry_id: int
    kind: EntryKind
    amount_paise: int
    created_at: datetime
    due_date: date | None = None
    reference: str = ""


@dataclass(frozen=True, slots=True)
class UnpaidCharge:
    """A debit entry and how much of it no credit has settled yet."""

    entry: EntryView
    unpaid_paise: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """Credits applied to debits oldest first: what is left of each debit, and spare credit."""

    unpaid: tuple[UnpaidCharge, ...]
    credit_paise: int


@dataclass(frozen=True, slots=True)
class Dues:
    """What an account owes, split the way the consumer sees it."""

    outstanding_paise: int
    reconnection_fee_paise: int
    credit_paise: int

    @property
    def total_payable_paise(self) -> int:
        """Outstanding charges plus unpaid fees."""
        return self.outstanding_paise + self.reconnection_fee_paise

    @property
    def balance_paise(self) -> int:
        """Net balance: positive is owed, negative is credit."""
        return self.total_payable_paise - self.credit_paise


def entry_order(entry: EntryView) -> tuple[datetime, int]:
    """The ledger's one order: when the entry happened, then its id."""
    return (entry.created_at, entry.entry_id)


def settle(entries: Iterable[EntryView]) -> Settlement:
    """Settle all credits against debits oldest first; never depends on the input order."""
    ordered = sorted(entries, key=entry_order)
    credit = sum(-e.amount_paise for e in ordered if e.amount_paise < 0)
    unpaid: list[UnpaidCharge] = []
    for entry in ordered:
        if entry.amount_paise <= 0:
            continue
        settled = min(credit, entry.amount_paise)
        credit -= settled
        if entry.amount_paise > settled:
            unpaid.append(UnpaidCharge(entry, entry.amount_paise - settled))
    return Settlement(tuple(unpaid), credit)


def compute_dues(entries: Iterable[EntryView]) -> Dues:
    """Settle credits against debits oldest first; fees are paid in the order they were levied.

    Whatever credit is left over stays on the account as credit; the result never depends on
    the order the entries are given in.
    """
    settlement = settle(entries)
    fees = sum(c.unpaid_paise for c in settlement.unpaid if c.entry.kind is EntryKind.FEE)
    outstanding = sum(
        c.unpaid_paise for c in settlement.unpaid if c.entry.kind is not EntryKind.FEE
    )
    return Dues(
        outstanding_paise=outstanding,
        reconnection_fee_paise=fees,
        credit_paise=settlement.credit_paise,
    )
