"""Registering meters, accounts and opening bills (from the MDM and billing system, or a demo)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from cloud.db.models import Account, Meter
from cloud.db.session import Database
from cloud.ledger.dues import EntryKind
from cloud.ledger.service import add_entry
from wire import RelayState


@dataclass(frozen=True)
class BillRecord:
    """A bill to open on an account."""

    bill_id: str
    amount_paise: int
    issued_at: datetime
    due_date: date
    period: tuple[date, date]


@dataclass(frozen=True)
class AccountRecord:
    """One consumer, their meter and its DCU, and what we know of its relay today."""

    account_id: str
    consumer_name: str
    meter_id: str
    dcu_id: str
    relay: RelayState
    control_mode: int = 2
    installed_on: date | None = None
    phone: str | None = None
    bills: Sequence[BillRecord] = field(default_factory=tuple)
    fees_paise: Sequence[tuple[str, int, datetime]] = field(default_factory=tuple)


async def register_accounts(db: Database, records: Sequence[AccountRecord], at: datetime) -> int:
    """Insert meters, accounts, bills and fees in one transaction; returns accounts added."""
    async with db.write() as session:
        for record in records:
            session.add(
                Meter(
                    meter_id=record.meter_id,
                    dcu_id=record.dcu_id,
                    control_mode=record.control_mode,
                    installed_on=record.installed_on,
                    desired_relay=(
                        RelayState.CONNECTED.value
                        if record.relay is RelayState.CONNECTED
                        else RelayState.DISCONNECTED.value
                    ),
                    desired_version=0,
                    desired_at=at,
                    reported_relay=record.relay.value,
                    reported_at=at,
                )
            )
        # Meters first: accounts reference them.
        await session.flush()
        for record in records:
            session.add(
                Account(
                    account_id=record.account_id,
                    consumer_name=record.consumer_name,
                    phone=record.phone,
                    meter_id=record.meter_id,
                    created_at=at,
                )
            )
        await session.flush()
        for record in records:
            for bill in record.bills:
                add_entry(
                    session,
                    account_id=record.account_id,
                    kind=EntryKind.BILL,
                    amount_paise=bill.amount_paise,
                    reference=bill.bill_id,
                    at=bill.issued_at,
                    description=f"bill {bill.bill_id}",
                    due_date=bill.due_date,
                    period=bill.period,
                )
            for reference, amount_paise, levied_at in record.fees_paise:
                add_entry(
                    session,
                    account_id=record.account_id,
                    kind=EntryKind.FEE,
                    amount_paise=amount_paise,
                    reference=reference,
                    at=levied_at,
                    description="reconnection fee",
                )
    return len(records)
