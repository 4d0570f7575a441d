"""Messages to consumers, and a pass of reminders and disconnection notices on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from cloud.api.schemas import Page
from cloud.api.schemas_policy import NoticeRunOut, NotificationOut
from cloud.db.models import Notification
from cloud.notify.messages import MessageKind
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get(
    "/notifications", response_model=Page[NotificationOut], responses=error_responses(401, 422)
)
async def list_notifications(
    runtime: RuntimeDep,
    _: ViewerDep,
    account_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    kind: Annotated[MessageKind | None, Query()] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[NotificationOut]:
    """Messages recorded by the notifier (and notices served offline), oldest first."""
    after = decode_cursor(cursor)
    query = select(Notification)
    if account_id is not None:
        query = query.where(Notification.account_id == account_id)
    if kind is not None:
        query = query.where(Notification.kind == kind.value)
    if after is not None:
        if not after.isdigit() or int(after) >= 2**63 - 1:
            # Not a position in this list (we only issue row ids): nothing comes after it.
            return Page[NotificationOut](items=[], next_cursor=None)
        query = query.where(Notification.notification_id > int(after))
    query = query.order_by(Notification.notification_id).limit(limit)
    async with runtime.db.read() as session:
        items = [NotificationOut.build(n) for n in (await session.execute(query)).scalars()]
    next_cursor = encode_cursor(str(items[-1].notification_id)) if len(items) == limit else None
    return Page[NotificationOut](items=items, next_cursor=next_cursor)


@router.post(
    "/notice-runs", response_model=NoticeRunOut, responses=error_responses(400, 401, 403, 409, 422)
)
async def run_notices(runtime: RuntimeDep, _: OperatorDep) -> NoticeRunOut:
    """Send every reminder and disconnection notice now due (none twice)."""
    result = await runtime.policy.notices.serve()
    return NoticeRunOut(reminders=result.reminders, notices=result.notices)
