"""The audit log of operator actions: who, when, what, why and how it ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from cloud.access.audit import AuditAction, AuditOutcome
from cloud.access.tokens import NAME_PATTERN
from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import LimitQuery
from cloud.api.schemas import AuditEntryOut, Page
from cloud.db.models import AuditEntry

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntryOut], responses=error_responses(401, 422))
async def list_audit(
    runtime: RuntimeDep,
    _: ViewerDep,
    actor: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    outcome: Annotated[AuditOutcome | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="from `next_cursor`")
    ] = None,
) -> Page[AuditEntryOut]:
    """Audit entries, newest first, filtered by actor, action and outcome."""
    query = select(AuditEntry)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action.value)
    if outcome is not None:
        query = query.where(AuditEntry.outcome == outcome.value)
    if cursor is not None:
        query = query.where(AuditEntry.audit_id < int(cursor))
    query = query.order_by(AuditEntry.audit_id.desc()).limit(limit)
    async with runtime.db.read() as session:
        items = [AuditEntryOut.build(e) for e in (await session.execute(query)).scalars()]
    next_cursor = str(items[-1].audit_id) if len(items) == limit else None
    return Page[AuditEntryOut](items=items, next_cursor=next_cursor)
