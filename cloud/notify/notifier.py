"""The notifier interface and its development implementation, which records and logs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Notification
from cloud.notify.messages import Message

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Sends messages within the caller's transaction; a reference already sent is skipped."""

    async def notify(
        self, session: AsyncSession, message: Message, at: datetime
    ) -> Notification | None: ...

    async def notify_all(
        self, session: AsyncSession, messages: Sequence[Message], at: datetime
    ) -> list[Notification]: ...


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
        sent = await self.notify_all(session, [message], at)
        return sent[0] if sent else None

    async def notify_all(
        self, session: AsyncSession, messages: Sequence[Message], at: datetime
    ) -> list[Notification]:
        """Record every message not sent before, with one lookup for the whole lot."""
        references = [message.reference for message in messages]
        already = set(
            (
                await session.scalars(
                    select(Notification.reference).where(Notification.reference.in_(references))
                )
            ).all()
        )
        rows = []
        for message in messages:
            if message.reference in already:
                continue
            already.add(message.reference)
            rows.append(self._record(session, message, at))
        return rows

    def _record(self, session: AsyncSession, message: Message, at: datetime) -> Notification:
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
