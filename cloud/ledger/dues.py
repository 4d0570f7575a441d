"""Dues from ledger entries: pure arithmetic in integer paise, never floats."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
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


def compute_dues(entries: Iterable[EntryView]) -> Dues:
    """Settle credits against debits oldest first; fees are paid in the order they were levied.

    Whatever credit is left over stays on the account as credit; the result never depends on
    the order the entries are given in.
    """
    ordered = sorted(entries, key=lambda e: (e.created_at, e.entry_id))
    credit = sum(-e.amount_paise for e in ordered if e.amount_paise < 0)
    outstanding = 0
    fees = 0
    for entry in ordered:
        if entry.amount_paise <= 0:
            continue
        settled = min(credit, entry.amount_paise)
        credit -= settled
        unpaid = entry.amount_paise - settled
        if entry.kind is EntryKind.FEE:
            fees += unpaid
        else:
            outstanding += unpaid
    return Dues(outstanding_paise=outstanding, reconnection_fee_paise=fees, credit_paise=credit)
