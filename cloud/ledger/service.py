"""Reading and writing an account's ledger inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import LedgerEntry
from cloud.ledger.dues import Dues, EntryKind, EntryView, compute_dues


async def account_entries(session: AsyncSession, account_id: str) -> list[LedgerEntry]:
    """Every ledger entry of an account, oldest first."""
    result = await session.execute(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.created_at, LedgerEntry.entry_id)
    )
    return list(result.scalars())


def entry_view(entry: LedgerEntry) -> EntryView:
    """The arithmetic view of a stored entry."""
    return EntryView(
        entry.entry_id,
        EntryKind(entry.kind),
        entry.amount_paise,
        entry.created_at,
        entry.due_date,
        entry.reference,
    )


def dues_of(entries: list[LedgerEntry]) -> Dues:
    """Dues computed from loaded entries."""
    return compute_dues(entry_view(e) for e in entries)


async def account_balance_paise(session: AsyncSession, account_id: str) -> int:
    """Net balance (positive is owed) by one aggregate; zero or less means nothing is payable."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_paise), 0)).where(
            LedgerEntry.account_id == account_id
        )
    )
    return int(total or 0)


async def total_payable_paise(
    session: AsyncSession, account_ids: Collection[str]
) -> dict[str, int]:
    """Total payable of each account, by one grouped aggregate.

    Credits settle debits oldest first and only what is left over stays as credit, so the total
    payable is the balance when it is positive and nothing otherwise.
    """
    rows = await session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_paise))
        .where(LedgerEntry.account_id.in_(list(account_ids)))
        .group_by(LedgerEntry.account_id)
    )
    return {account_id: max(0, int(total or 0)) for account_id, total in rows.all()}


async def account_dues(session: AsyncSession, account_id: str) -> Dues:
    """Dues of one account, computed from its entries."""
    return dues_of(await account_entries(session, account_id))


async def find_entry(session: AsyncSession, kind: EntryKind, reference: str) -> LedgerEntry | None:
    """The entry of this kind with this reference, if one was recorded."""
    return (
        await session.execute(
            select(LedgerEntry).where(
                LedgerEntry.kind == kind.value, LedgerEntry.reference == reference
            )
        )
    ).scalar_one_or_none()


def entry_values(
    *,
    account_id: str,
    kind: EntryKind,
    amount_paise: int,
    reference: str,
    at: datetime,
    description: str = "",
    due_date: date | None = None,
    period: tuple[date, date] | None = None,
) -> dict[str, Any]:
    """The column values of one ledger entry; (kind, reference) is unique, so replays cannot
    double-count."""
    if not isinstance(amount_paise, int) or isinstance(amount_paise, bool):
        raise TypeError("amount_paise must be an integer number of paise")
    return {
        "account_id": account_id,
        "kind": kind.value,
        "amount_paise": amount_paise,
        "reference": reference,
        "description": description[:200],
        "due_date": due_date,
        "period_start": period[0] if period else None,
        "period_end": period[1] if period else None,
        "created_at": at,
    }


def add_entry(
    session: AsyncSession,
    *,
    account_id: str,
    kind: EntryKind,
    amount_paise: int,
    reference: str,
    at: datetime,
    description: str = "",
    due_date: date | None = None,
    period: tuple[date, date] | None = None,
) -> LedgerEntry:
    """Add one entry; (kind, reference) is unique, so replays cannot double-count."""
    entry = LedgerEntry(
        **entry_values(
            account_id=account_id,
            kind=kind,
            amount_paise=amount_paise,
            reference=reference,
            at=at,
            description=description,
            due_date=due_date,
            period=period,
        )
    )
    session.add(entry)
    return entry
