"""Accounts and the dues a consumer sees."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from cloud.api.schemas import AccountOut, DuesOut, MeterOut, Page, power_status
from cloud.db.models import Account, Meter
from cloud.errors import NotFound
from cloud.ledger.service import account_dues
from wire import RelayState
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get("/{account_id}/dues", response_model=DuesOut, responses=error_responses(404, 422))
async def get_dues(account_id: AccountIdPath, runtime: RuntimeDep) -> DuesOut:
    """Outstanding dues, reconnection fee and total payable — what the consumer pays."""
    async with runtime.db.read() as session:
        row = (
            await session.execute(
                select(Account, Meter)
                .join(Meter, Meter.meter_id == Account.meter_id)
                .where(Account.account_id == account_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"account {account_id} not found")
        account, meter = row
        dues = await account_dues(session, account_id)
    power = power_status(meter)
    if dues.total_payable_paise > 0:
        message = "Pay the total payable online; power returns within seconds."
    elif meter.reported_relay == RelayState.READY_FOR_RECONNECTION.value:
        message = "Dues cleared. Press the button on your meter to restore power."
    else:
        message = "No dues."
    return DuesOut(
        account_id=account.account_id,
        outstanding_paise=dues.outstanding_paise,
        reconnection_fee_paise=dues.reconnection_fee_paise,
        total_payable_paise=dues.total_payable_paise,
        credit_paise=dues.credit_paise,
        currency=runtime.settings.currency,
        relay=RelayState(meter.reported_relay) if meter.reported_relay else None,
        power=power,
        message=message,
    )


@router.get("", response_model=Page[AccountOut], responses=error_responses(401, 422))
async def list_accounts(
    runtime: RuntimeDep,
    _: ViewerDep,
    status: Annotated[Literal["connected", "disconnected"] | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[AccountOut]:
    """Accounts in id order, optionally only those connected or disconnected."""
    after = decode_cursor(cursor)
    relay = func.coalesce(Meter.reported_relay, Meter.desired_relay)
    query = select(Account, Meter).join(Meter, Meter.meter_id == Account.meter_id)
    if status == "connected":
        query = query.where(relay == RelayState.CONNECTED.value)
    elif status == "disconnected":
        query = query.where(relay != RelayState.CONNECTED.value)
    if after is not None:
        query = query.where(Account.account_id > after)
    query = query.order_by(Account.account_id).limit(limit)
    items: list[AccountOut] = []
    async with runtime.db.read() as session:
        for account, meter in (await session.execute(query)).all():
            items.append(await _account_out(session, account, meter))
    next_cursor = encode_cursor(items[-1].account_id) if len(items) == limit else None
    return Page[AccountOut](items=items, next_cursor=next_cursor)


@router.get("/{account_id}", response_model=AccountOut, responses=error_responses(401, 404, 422))
async def get_account(account_id: AccountIdPath, runtime: RuntimeDep, _: ViewerDep) -> AccountOut:
    """One account with its meter, balance and status."""
    async with runtime.db.read() as session:
        row = (
            await session.execute(
                select(Account, Meter)
                .join(Meter, Meter.meter_id == Account.meter_id)
                .where(Account.account_id == account_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"account {account_id} not found")
        return await _account_out(session, row[0], row[1])


async def _account_out(session: AsyncSession, account: Account, meter: Meter) -> AccountOut:
    dues = await account_dues(session, account.account_id)
    return AccountOut(
        account_id=account.account_id,
        consumer_name=account.consumer_name,
        meter_id=account.meter_id,
        balance_paise=dues.balance_paise,
        total_payable_paise=dues.total_payable_paise,
        status=power_status(meter),
        meter=MeterOut.model_validate(meter),
    )
