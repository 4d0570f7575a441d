"""Loading the snapshots the rules judge: overdue accounts with their meter, gateway, protections,
open disputes and disconnection notices, all read in the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Account, Dispute, Gateway, LedgerEntry, Meter, Notification, Protection
from cloud.ledger.arrears import Arrears, arrears_as_of
from cloud.ledger.dues import EntryKind, EntryView
from cloud.notify.messages import MessageKind
from cloud.policy.rules import AccountSnapshot

# Keeps IN lists well under every database's bound-parameter limit.
CHUNK = 500
T = TypeVar("T")


@dataclass(frozen=True)
class OverdueCriteria:
    """Which accounts count as overdue on a given local day."""

    today: date
    grace_days: int
    min_overdue_paise: int


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def overdue_arrears(
    session: AsyncSession, criteria: OverdueCriteria, account_ids: Sequence[str] | None = None
) -> dict[str, Arrears]:
    """Arrears of every account (or of the given ones) whose overdue amount is over the limit."""
    last_due = criteria.today - timedelta(days=criteria.grace_days + 1)
    if account_ids is None:
        account_ids = list(
            (
                await session.execute(
                    select(LedgerEntry.account_id)
                    .where(
                        LedgerEntry.kind == EntryKind.BILL.value,
                        LedgerEntry.due_date <= last_due,
                    )
                    .distinct()
                    .order_by(LedgerEntry.account_id)
                )
            ).scalars()
        )
    found: dict[str, Arrears] = {}
    for chunk in chunks(account_ids):
        entries: dict[str, list[EntryView]] = defaultdict(list)
        # Plain columns, not ORM objects: a run reads every entry of every overdue account.
        rows = await session.execute(
            select(
                LedgerEntry.account_id,
                LedgerEntry.entry_id,
                LedgerEntry.kind,
                LedgerEntry.amount_paise,
                LedgerEntry.created_at,
                LedgerEntry.due_date,
                LedgerEntry.reference,
            ).where(LedgerEntry.account_id.in_(chunk))
        )
        for account_id, entry_id, kind, paise, at, due, reference in rows.all():
            entries[account_id].append(
                EntryView(entry_id, EntryKind(kind), paise, at, due, reference)
            )
        for account_id in chunk:
            arrears = arrears_as_of(entries[account_id], criteria.today, criteria.grace_days)
            if arrears.overdue_paise > criteria.min_overdue_paise:
                found[account_id] = arrears
    return found


async def load_snapshots(
    session: AsyncSession, criteria: OverdueCriteria, account_ids: Sequence[str] | None = None
) -> list[AccountSnapshot]:
    """Snapshots of the overdue accounts, in account id order."""
    arrears = await overdue_arrears(session, criteria, account_ids)
    snapshots: list[AccountSnapshot] = []
    for chunk in chunks(sorted(arrears)):
        rows = await session.execute(
            select(Account, Meter, Gateway.online)
            .join(Meter, Meter.meter_id == Account.meter_id)
            .outerjoin(Gateway, Gateway.dcu_id == Meter.dcu_id)
            .where(Account.account_id.in_(chunk))
            .order_by(Account.account_id)
        )
        protections = await _grouped(
            session,
            select(Protection.account_id, Protection.kind).where(
                Protection.account_id.in_(chunk), Protection.ended_at.is_(None)
            ),
        )
        disputes = await _grouped(
            session,
            select(Dispute.account_id, Dispute.kind).where(
                Dispute.account_id.in_(chunk), Dispute.resolved_at.is_(None)
            ),
        )
        notices = await _grouped(
            session,
            select(Notification.account_id, Notification.served_at).where(
                Notification.account_id.in_(chunk),
                Notification.kind == MessageKind.DISCONNECTION_NOTICE.value,
            ),
        )
        for account, meter, online in rows.all():
            owed = arrears[account.account_id]
            oldest = owed.oldest
            snapshots.append(
                AccountSnapshot(
                    account_id=account.account_id,
                    meter_id=meter.meter_id,
                    dcu_id=meter.dcu_id,
                    overdue_paise=owed.overdue_paise,
                    oldest_overdue_issued_at=oldest.entry.created_at if oldest else None,
                    desired_relay=meter.desired_relay,
                    # What the meter itself reported beats what the MDM registered.
                    control_mode=(
                        meter.reported_control_mode
                        if meter.reported_control_mode is not None
                        else meter.control_mode
                    ),
                    installed_on=meter.installed_on,
                    gateway_online=bool(online),
                    protections=tuple(protections.get(account.account_id, ())),
                    open_disputes=tuple(disputes.get(account.account_id, ())),
                    notices_served_at=tuple(notices.get(account.account_id, ())),
                    oldest_overdue_bill=oldest.entry.reference if oldest else None,
                )
            )
    return snapshots


async def _grouped(session: AsyncSession, query: Select[str, Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for account_id, value in (await session.execute(query)).all():
        grouped[account_id].append(value)
    return grouped
