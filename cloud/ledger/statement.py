"""An account statement: every entry in ledger order with the running balance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cloud.db.models import LedgerEntry
from cloud.ledger.dues import Dues
from cloud.ledger.service import dues_of


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One entry and the balance right after it (positive is owed)."""

    entry: LedgerEntry
    balance_paise: int


@dataclass(frozen=True, slots=True)
class Statement:
    """Opening balance, the lines in the window, closing balance, and today's dues."""

    opening_balance_paise: int
    lines: tuple[StatementLine, ...]
    closing_balance_paise: int
    dues: Dues


def build_statement(
    entries: Sequence[LedgerEntry],
    since: datetime | None = None,
    until: datetime | None = None,
) -> Statement:
    """Lines for entries in [since, until); the dues always cover the whole ledger."""
    ordered = sorted(entries, key=lambda e: (e.created_at, e.entry_id))
    balance = 0
    opening = 0
    lines: list[StatementLine] = []
    for entry in ordered:
        if until is not None and entry.created_at >= until:
            break
        balance += entry.amount_paise
        if since is not None and entry.created_at < since:
            opening = balance
            continue
        lines.append(StatementLine(entry, balance))
    return Statement(opening, tuple(lines), balance, dues_of(list(ordered)))
