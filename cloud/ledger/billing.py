"""Bills and adjustments from the billing system and operators: recorded once per reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.lifecycle import Origin
from cloud.db.models import Account, LedgerEntry
from cloud.db.session import Database
from cloud.errors import Conflict, NotFound
from cloud.ledger.dues import EntryKind
from cloud.ledger.service import account_dues, add_entry, find_entry
from wire import Action, RelayState


@dataclass(frozen=True)
class NewBill:
    """A bill as the billing system issues it."""

    bill_id: str
    amount_paise: int
    period: tuple[date, date]
    due_date: date
    issued_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The entry, whether this call created it, and a reconnect it queued (if any)."""

    entry: LedgerEntry
    created: bool
    command_id: str | None = None


async def _account(session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


def _same_or_conflict(existing: LedgerEntry, account_id: str, same: bool, what: str) -> None:
    if existing.account_id != account_id or not same:
        raise Conflict(
            f"{what} {existing.reference} was already recorded with different details",
            code="duplicate_reference",
        )


async def record_bill(db: Database, account_id: str, bill: NewBill) -> Recorded:
    """Add a bill; the same bill again is answered with the stored one, a different one is 409."""
    async with db.write() as session:
        await _account(session, account_id)
        existing = await find_entry(session, EntryKind.BILL, bill.bill_id)
        if existing is not None:
            same = (
                existing.amount_paise,
                existing.due_date,
                existing.period_start,
                existing.period_end,
            ) == (bill.amount_paise, bill.due_date, *bill.period)
            _same_or_conflict(existing, account_id, same, "bill")
            return Recorded(existing, created=False)
        entry = add_entry(
            session,
            account_id=account_id,
            kind=EntryKind.BILL,
            amount_paise=bill.amount_paise,
            reference=bill.bill_id,
            at=bill.issued_at,
            description=f"bill {bill.bill_id} for {bill.period[0]} to {bill.period[1]}",
            due_date=bill.due_date,
            period=bill.period,
        )
        await session.flush()
        return Recorded(entry, created=True)


async def record_adjustment(
    db: Database,
    factory: CommandFactory,
    *,
    account_id: str,
    reference: str,
    amount_paise: int,
    reason: str,
    actor: str,
    now: datetime,
) -> Recorded:
    """Add an adjustment; a credit that clears the dues reconnects the meter, like a payment."""
    async with db.write() as session:
        account = await _account(session, account_id)
        existing = await find_entry(session, EntryKind.ADJUSTMENT, reference)
        if existing is not None:
            _same_or_conflict(
                existing, account_id, existing.amount_paise == amount_paise, "adjustment"
            )
            return Recorded(existing, created=False)
        entry = add_entry(
            session,
            account_id=account_id,
            kind=EntryKind.ADJUSTMENT,
            amount_paise=amount_paise,
            reference=reference,
            at=now,
            description=f"adjustment by {actor}: {reason}",
        )
        await session.flush()
        command_id = None
        if amount_paise < 0 and (await account_dues(session, account_id)).total_payable_paise <= 0:
            meter = await lock_meter(session, account.meter_id)
            if meter is not None and meter.desired_relay != RelayState.CONNECTED.value:
                request = RelayRequest(
                    meter_id=meter.meter_id,
                    action=Action.CONNECT,
                    reason=f"dues cleared by adjustment {reference}",
                    origin=Origin.OPERATOR,
                    requested_at=now,
                    actor=actor,
                )
                command = await request_relay(session, meter, request, factory, now)
                command_id = command.command_id
        return Recorded(entry, created=True, command_id=command_id)
