"""Arrears: what is left unpaid of bills whose due date plus grace has passed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from cloud.ledger.dues import EntryKind, EntryView, UnpaidCharge, settle


@dataclass(frozen=True, slots=True)
class Arrears:
    """An account's overdue bills as of one local date."""

    overdue_paise: int
    overdue_bills: tuple[UnpaidCharge, ...]

    @property
    def oldest(self) -> UnpaidCharge | None:
        """The oldest bill still (partly) unpaid past its due date and grace."""
        return self.overdue_bills[0] if self.overdue_bills else None


def arrears_as_of(entries: Iterable[EntryView], today: date, grace_days: int) -> Arrears:
    """Unpaid parts of bills due before `today - grace_days` (payments settle oldest first)."""
    last_due = today - timedelta(days=grace_days + 1)
    overdue = tuple(
        charge
        for charge in settle(entries).unpaid
        if charge.entry.kind is EntryKind.BILL
        and charge.entry.due_date is not None
        and charge.entry.due_date <= last_due
    )
    return Arrears(sum(c.unpaid_paise for c in overdue), overdue)
