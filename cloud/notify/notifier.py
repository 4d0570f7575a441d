"""The notifier interface and its development implementation, which records and logs."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Notification
from cloud.notify.messages import Message

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Sends a message within the caller's transaction; a reference already sent is skipped."""

    async def notify(
        self, session: AsyncSession, message: Message, at: datetime
    ) -> Notification | None: ...


async def sent_before(session: AsyncSession, reference: str) -> Notification | None:
    """The notification with this reference, if there is one."""
    return (
        await session.execute(select(Notification).where(Notification.reference == reference))
    ).scalar_one_or_none()


class RecordingNotifier:
    """Development: every message is kept in the notifications table and logged once committed.

    Production puts an SMS gateway behind the same interface; the table stays the evidence of
    what was sent and when (the notice period is counted from it).
    """

    channel = "dev-log"

    async def notify(
        self, session: AsyncSession, message: Message, at: datetime
    ) -> Notification | None:
        """Record the message as served at `at`; None if its reference was already sent."""
        if await sent_before(session, message.reference) is not None:
            return None
        row = Notification(
            account_id=message.account_id,
            kind=message.kind.value,
            channel=self.channel,
            recipient=message.recipient,
            body=message.body,
            reference=message.reference,
            served_at=at,
            recorded_at=at,
        )
        session.add(row)
        # Logged after the commit, so the log never shows a message that was rolled back.
        event.listen(
            session.sync_session,
            "after_commit",
            lambda _session: log.info(
                "message to %s (%s) [%s]: %s",
                message.account_id,
                message.recipient or "no phone",
                message.kind.value,
                message.body,
            ),
            once=True,
        )
        return row
