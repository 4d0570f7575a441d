"""What operators record to hold a disconnection back or to let it proceed: protections,
disputes and payments under protest, and disconnection notices served outside Switchyard."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Account, Dispute, Notification, Protection
from cloud.errors import Conflict, NotFound
from cloud.notify.messages import MessageKind
from cloud.notify.notifier import Notifier
from cloud.policy.notices import serve_notice
from cloud.policy.rules import RuleBook
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import OverdueCriteria, load_snapshots


async def account_or_404(session: AsyncSession, account_id: str) -> Account:
    """The account, or NotFound."""
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def end_protection(
    session: AsyncSession, account_id: str, protection_id: int, actor: str, now: datetime
) -> Protection:
    """End an active protection."""
    row = await session.get(Protection, protection_id, with_for_update=True)
    if row is None or row.account_id != account_id:
        raise NotFound(f"protection {protection_id} of {account_id} not found")
    if row.ended_at is not None:
        raise Conflict(f"protection {protection_id} already ended")
    row.ended_at, row.ended_by = now, actor
    return row


async def resolve_dispute(
    session: AsyncSession,
    account_id: str,
    dispute_id: int,
    resolution: str,
    actor: str,
    now: datetime,
) -> Dispute:
    """Close an open dispute or payment under protest."""
    row = await session.get(Dispute, dispute_id, with_for_update=True)
    if row is None or row.account_id != account_id:
        raise NotFound(f"dispute {dispute_id} of {account_id} not found")
    if row.resolved_at is not None:
        raise Conflict(f"dispute {dispute_id} already resolved")
    row.resolved_at, row.resolved_by, row.resolution = now, actor, resolution
    return row


async def serve_notice_now(
    session: AsyncSession,
    notifier: Notifier,
    settings: PolicySettings,
    book: RuleBook,
    account: Account,
    now: datetime,
) -> Notification:
    """Serve this account's disconnection notice through the notifier (409 if not overdue)."""
    criteria = OverdueCriteria(
        book.local(now).date(), settings.grace_days, settings.min_overdue_paise
    )
    snapshots = await load_snapshots(session, criteria, [account.account_id])
    if not snapshots:
        raise Conflict(f"account {account.account_id} is not overdue", code="not_overdue")
    if not await serve_notice(session, notifier, snapshots[0], account.phone, book, now):
        raise Conflict(
            f"the notice for these dues of {account.account_id} was already served",
            code="already_served",
        )
    await session.flush()
    return (
        await session.execute(
            select(Notification)
            .where(
                Notification.account_id == account.account_id,
                Notification.kind == MessageKind.DISCONNECTION_NOTICE.value,
            )
            .order_by(Notification.notification_id.desc())
            .limit(1)
        )
    ).scalar_one()


def record_offline_notice(
    session: AsyncSession,
    account: Account,
    channel: str,
    served_at: datetime,
    actor: str,
    now: datetime,
) -> Notification:
    """Record a notice served by hand or post; the notice period counts from `served_at`."""
    row = Notification(
        account_id=account.account_id,
        kind=MessageKind.DISCONNECTION_NOTICE.value,
        channel=channel,
        recipient=None,
        body=f"disconnection notice served by {channel.replace('_', ' ')}",
        reference=f"{channel}:{account.account_id}:{uuid.uuid4().hex}",
        served_at=served_at,
        recorded_at=now,
        actor=actor,
    )
    session.add(row)
    return row
