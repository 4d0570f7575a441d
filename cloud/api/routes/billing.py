"""The ledger from the outside: bills, adjustments and the account statement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import AwareDatetime

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.schemas_policy import (
    AdjustmentIn,
    AdjustmentOut,
    BillIn,
    LedgerEntryOut,
    StatementLineOut,
    StatementOut,
    entry_out,
)
from cloud.clock import utcnow
from cloud.db.models import Account
from cloud.errors import NotFound, Unprocessable
from cloud.ledger.billing import NewBill, record_adjustment, record_bill
from cloud.ledger.service import account_entries
from cloud.ledger.statement import build_statement
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/accounts", tags=["billing"])

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post(
    "/{account_id}/bills",
    response_model=LedgerEntryOut,
    status_code=201,
    responses={
        200: {"model": LedgerEntryOut, "description": "the same bill again: the stored one"},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
async def add_bill(
    account_id: AccountIdPath,
    body: BillIn,
    response: Response,
    runtime: RuntimeDep,
    _: OperatorDep,
) -> LedgerEntryOut:
    """Record a bill (201); the same bill again answers 200 with the stored one."""
    issued_at = body.issued_at or utcnow()
    if issued_at > utcnow():
        raise Unprocessable("issued_at is in the future")
    bill = NewBill(
        body.bill_id,
        body.amount_paise,
        (body.period_start, body.period_end),
        body.due_date,
        issued_at,
    )
    recorded = await record_bill(runtime.db, account_id, bill)
    if not recorded.created:
        response.status_code = status.HTTP_200_OK
    return entry_out(recorded.entry)


@router.post(
    "/{account_id}/adjustments",
    response_model=AdjustmentOut,
    status_code=201,
    responses={
        200: {"model": AdjustmentOut, "description": "the same reference again: the stored one"},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
async def add_adjustment(
    account_id: AccountIdPath,
    body: AdjustmentIn,
    response: Response,
    runtime: RuntimeDep,
    operator: OperatorDep,
) -> AdjustmentOut:
    """Record a correction (201; the same reference again answers 200 with the stored one); a
    credit that clears the dues reconnects the meter."""
    recorded = await record_adjustment(
        runtime.db,
        runtime.factory,
        account_id=account_id,
        reference=body.reference,
        amount_paise=body.amount_paise,
        reason=body.reason,
        actor=operator.name,
        now=utcnow(),
    )
    if not recorded.created:
        response.status_code = status.HTTP_200_OK
    if recorded.command_id is not None:
        runtime.dispatcher.wake()
    base = entry_out(recorded.entry).model_dump()
    return AdjustmentOut(**base, command_id=recorded.command_id)


@router.get(
    "/{account_id}/statement", response_model=StatementOut, responses=error_responses(401, 404, 422)
)
async def get_statement(
    account_id: AccountIdPath,
    runtime: RuntimeDep,
    _: ViewerDep,
    since: Annotated[AwareDatetime | None, Query(description="first instant shown")] = None,
    until: Annotated[AwareDatetime | None, Query(description="first instant not shown")] = None,
) -> StatementOut:
    """Every bill, payment, fee and adjustment with the running balance, and today's dues."""
    async with runtime.db.read() as session:
        if await session.get(Account, account_id) is None:
            raise NotFound(f"account {account_id} not found")
        entries = await account_entries(session, account_id)
    statement = build_statement(entries, since, until)
    dues = statement.dues
    return StatementOut(
        account_id=account_id,
        currency=runtime.settings.currency,
        opening_balance_paise=statement.opening_balance_paise,
        closing_balance_paise=statement.closing_balance_paise,
        outstanding_paise=dues.outstanding_paise,
        reconnection_fee_paise=dues.reconnection_fee_paise,
        credit_paise=dues.credit_paise,
        total_payable_paise=dues.total_payable_paise,
        lines=[
            StatementLineOut(**entry_out(line.entry).model_dump(), balance_paise=line.balance_paise)
            for line in statement.lines
        ],
    )
