"""Per-account safeguards: protections, disputes and payments under protest, notices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.schemas_policy import (
    DisputeIn,
    DisputeOut,
    NoticeIn,
    NotificationOut,
    ProtectionIn,
    ProtectionOut,
    ResolveIn,
)
from cloud.clock import utcnow
from cloud.db.models import Dispute, Protection
from cloud.errors import Unprocessable
from cloud.policy.safeguards import (
    account_or_404,
    end_protection,
    record_offline_notice,
    resolve_dispute,
    serve_notice_now,
)
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/accounts", tags=["safeguards"])

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
RowIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get(
    "/{account_id}/protections",
    response_model=list[ProtectionOut],
    responses=error_responses(401, 404, 422),
)
async def list_protections(
    account_id: AccountIdPath, runtime: RuntimeDep, _: ViewerDep
) -> list[ProtectionOut]:
    """Every protection of the account, active (no `ended_at`) or not."""
    async with runtime.db.read() as session:
        await account_or_404(session, account_id)
        rows = await session.execute(
            select(Protection)
            .where(Protection.account_id == account_id)
            .order_by(Protection.protection_id)
        )
        return [ProtectionOut.build(row) for row in rows.scalars()]


@router.post(
    "/{account_id}/protections",
    response_model=ProtectionOut,
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def add_protection(
    account_id: AccountIdPath, body: ProtectionIn, runtime: RuntimeDep, operator: OperatorDep
) -> ProtectionOut:
    """Protect the consumer (life support, essential service) from disconnection."""
    async with runtime.db.write() as session:
        await account_or_404(session, account_id)
        row = Protection(
            account_id=account_id,
            kind=body.kind,
            reason=body.reason,
            created_at=utcnow(),
            created_by=operator.name,
        )
        session.add(row)
        await session.flush()
        return ProtectionOut.build(row)


@router.delete(
    "/{account_id}/protections/{protection_id}",
    response_model=ProtectionOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def remove_protection(
    account_id: AccountIdPath, protection_id: RowIdPath, runtime: RuntimeDep, operator: OperatorDep
) -> ProtectionOut:
    """End a protection; the record stays."""
    async with runtime.db.write() as session:
        row = await end_protection(session, account_id, protection_id, operator.name, utcnow())
        return ProtectionOut.build(row)


@router.get(
    "/{account_id}/disputes",
    response_model=list[DisputeOut],
    responses=error_responses(401, 404, 422),
)
async def list_disputes(
    account_id: AccountIdPath, runtime: RuntimeDep, _: ViewerDep
) -> list[DisputeOut]:
    """Every dispute and payment under protest of the account."""
    async with runtime.db.read() as session:
        await account_or_404(session, account_id)
        rows = await session.execute(
            select(Dispute).where(Dispute.account_id == account_id).order_by(Dispute.dispute_id)
        )
        return [DisputeOut.build(row) for row in rows.scalars()]


@router.post(
    "/{account_id}/disputes",
    response_model=DisputeOut,
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def open_dispute(
    account_id: AccountIdPath, body: DisputeIn, runtime: RuntimeDep, operator: OperatorDep
) -> DisputeOut:
    """Open a dispute or record a payment under protest: no disconnection while it is open."""
    async with runtime.db.write() as session:
        await account_or_404(session, account_id)
        row = Dispute(
            account_id=account_id,
            kind=body.kind,
            reason=body.reason,
            amount_paise=body.amount_paise,
            opened_at=utcnow(),
            opened_by=operator.name,
        )
        session.add(row)
        await session.flush()
        return DisputeOut.build(row)


@router.post(
    "/{account_id}/disputes/{dispute_id}/resolve",
    response_model=DisputeOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def close_dispute(
    account_id: AccountIdPath,
    dispute_id: RowIdPath,
    body: ResolveIn,
    runtime: RuntimeDep,
    operator: OperatorDep,
) -> DisputeOut:
    """Resolve a dispute; the account is judged by the other rules again."""
    async with runtime.db.write() as session:
        row = await resolve_dispute(
            session, account_id, dispute_id, body.resolution, operator.name, utcnow()
        )
        return DisputeOut.build(row)


@router.post(
    "/{account_id}/notices",
    response_model=NotificationOut,
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def add_notice(
    account_id: AccountIdPath, body: NoticeIn, runtime: RuntimeDep, operator: OperatorDep
) -> NotificationOut:
    """Serve the disconnection notice now, or record one served by hand or post."""
    policy = runtime.policy
    now = utcnow()
    async with runtime.db.write() as session:
        account = await account_or_404(session, account_id)
        if body.served_at is None:
            row = await serve_notice_now(
                session,
                policy.notifier,
                policy.settings,
                policy.book,
                account,
                policy.policy_clock(),
            )
            row.actor = operator.name
        else:
            if body.served_at > now:
                raise Unprocessable("served_at is in the future")
            row = record_offline_notice(
                session, account, body.channel, body.served_at, operator.name, now
            )
        await session.flush()
        return NotificationOut.build(row)
