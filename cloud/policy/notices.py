"""Reminders before the due date and the disconnection notice that starts the notice period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.db.models import Account, LedgerEntry
from cloud.db.session import Database
from cloud.ledger.dues import EntryKind, settle
from cloud.ledger.service import entry_view
from cloud.notify.messages import Message, MessageKind, notice_text, reminder_text
from cloud.notify.notifier import Notifier
from cloud.policy.rules import AccountSnapshot, Rule, RuleBook, notice_rule
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import OverdueCriteria, chunks, load_snapshots
from wire import RelayState


@dataclass(frozen=True)
class NoticeRunResult:
    """How many reminders and disconnection notices one pass sent."""

    reminders: int
    notices: int


def notice_reference(snapshot: AccountSnapshot) -> str:
    """One notice per account and oldest overdue bill: a new arrear needs a new notice."""
    return f"notice:{snapshot.account_id}:{snapshot.oldest_overdue_bill or '-'}"


async def serve_notice(
    session: AsyncSession,
    notifier: Notifier,
    snapshot: AccountSnapshot,
    phone: str | None,
    book: RuleBook,
    now: datetime,
) -> bool:
    """Serve the disconnection notice for this account's arrears (once); True if sent now."""
    earliest = book.local(now + timedelta(days=book.notice_days)).date()
    message = Message(
        account_id=snapshot.account_id,
        recipient=phone,
        kind=MessageKind.DISCONNECTION_NOTICE,
        body=notice_text(snapshot.overdue_paise, book.notice_days, earliest),
        reference=notice_reference(snapshot),
    )
    return await notifier.notify(session, message, now) is not None


class NoticeServer:
    """Sends what is due: reminders for bills falling due soon, notices for unnoticed arrears."""

    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        settings: PolicySettings,
        book: RuleBook,
        *,
        policy_clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._notifier = notifier
        self._settings = settings
        self._book = book
        self._policy_clock = policy_clock

    async def serve(self) -> NoticeRunResult:
        """One pass; running it again sends nothing twice (every message has a reference)."""
        now = self._policy_clock()
        today = self._book.local(now).date()
        async with self._db.write() as session:
            reminders = await self._reminders(session, today, now)
            notices = await self._notices(session, today, now)
        return NoticeRunResult(reminders, notices)

    async def _reminders(self, session: AsyncSession, today: date, now: datetime) -> int:
        last = today + timedelta(days=self._settings.reminder_days_before)
        account_ids = list(
            (
                await session.execute(
                    select(LedgerEntry.account_id)
                    .where(
                        LedgerEntry.kind == EntryKind.BILL.value,
                        LedgerEntry.due_date >= today,
                        LedgerEntry.due_date <= last,
                    )
                    .distinct()
                )
            ).scalars()
        )
        sent = 0
        for chunk in chunks(account_ids):
            phones = dict(
                (
                    await session.execute(
                        select(Account.account_id, Account.phone).where(
                            Account.account_id.in_(chunk)
                        )
                    )
                ).all()
            )
            rows = await session.execute(
                select(LedgerEntry).where(LedgerEntry.account_id.in_(chunk))
            )
            entries: dict[str, list[LedgerEntry]] = {}
            for entry in rows.scalars():
                entries.setdefault(entry.account_id, []).append(entry)
            for account_id, owned in entries.items():
                for charge in settle(entry_view(e) for e in owned).unpaid:
                    bill = charge.entry
                    if bill.kind is not EntryKind.BILL or bill.due_date is None:
                        continue
                    if not today <= bill.due_date <= last:
                        continue
                    message = Message(
                        account_id=account_id,
                        recipient=phones.get(account_id),
                        kind=MessageKind.REMINDER,
                        body=reminder_text(bill.reference, charge.unpaid_paise, bill.due_date),
                        reference=f"reminder:{bill.reference}",
                    )
                    sent += await self._notifier.notify(session, message, now) is not None
        return sent

    async def _notices(self, session: AsyncSession, today: date, now: datetime) -> int:
        criteria = OverdueCriteria(
            today, self._settings.grace_days, self._settings.min_overdue_paise
        )
        snapshots = [
            s
            for s in await load_snapshots(session, criteria)
            # Protected or disputed consumers get no threat of disconnection.
            if s.desired_relay == RelayState.CONNECTED.value
            and not s.protections
            and not s.open_disputes
            and notice_rule(s, now, self._book.notice_days) is Rule.NOTICE_MISSING
        ]
        sent = 0
        for chunk in chunks(snapshots):
            phones = dict(
                (
                    await session.execute(
                        select(Account.account_id, Account.phone).where(
                            Account.account_id.in_([s.account_id for s in chunk])
                        )
                    )
                ).all()
            )
            for snapshot in chunk:
                phone = phones.get(snapshot.account_id)
                sent += await serve_notice(
                    session, self._notifier, snapshot, phone, self._book, now
                )
        return sent
