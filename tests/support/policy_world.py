"""A cloud without MQTT for policy tests: a real database, the real runner, dispatcher, ack
applier, payment intake and hooks, a recording publisher, and clocks the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from cloud.commands.acks import AckApplier, AckRetryPolicy
from cloud.commands.desired import CommandFactory
from cloud.commands.dispatcher import Dispatcher, DispatchPolicy
from cloud.commands.presence import PresenceTracker
from cloud.db.migrate import upgrade_to_head
from cloud.db.models import Command, Dispute, Meter, Notification, Protection
from cloud.db.session import Database
from cloud.ledger.service import account_dues, account_entries
from cloud.metrics import CloudMetrics
from cloud.notify.notifier import RecordingNotifier
from cloud.onboarding import AccountRecord, BillRecord, register_accounts
from cloud.payments.intake import PaymentIntake, WebhookOutcome
from cloud.payments.webhook import parse_envelope
from cloud.policy.calendar import load_calendar
from cloud.policy.hooks import CommandOutcomeHooks
from cloud.policy.issuing import CommandIssuer
from cloud.policy.lease import LeaseKeeper
from cloud.policy.notices import NoticeServer
from cloud.policy.rules import RuleBook
from cloud.policy.runs import DisconnectionRunner
from cloud.policy.settings import PolicySettings
from switchyard.pay import webhook_body
from wire import Ack, AckStatus, CommandSigner, GatewayState, RelayState
from wire.signing import generate_private_key_b64

# Tuesday 1 December 2026, 11:00 in India: inside the window, not a holiday.
OPEN_TUESDAY = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)
FEE_PAISE = 35_000


class MovableClock:
    """A clock the test sets and moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingPublisher:
    """The dispatcher's publisher interface, keeping what was published."""

    connected: bool = True
    published: list[tuple[str, bytes]] = field(default_factory=list)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]:
        self.published.append((topic, payload))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class PolicyWorld:
    """Everything a policy test drives, on one database."""

    db: Database
    clock: MovableClock
    policy_clock: MovableClock
    settings: PolicySettings
    book: RuleBook
    factory: CommandFactory
    publisher: RecordingPublisher
    dispatcher: Dispatcher
    acks: AckApplier
    presence: PresenceTracker
    intake: PaymentIntake
    runner: DisconnectionRunner
    issuer: CommandIssuer
    notices: NoticeServer
    accounts: int = 0

    async def add_account(
        self,
        *,
        dcu_id: str = "DCU01",
        overdue_paise: int = 150_000,
        notice_days_ago: float | None = 20,
        installed_on: date | None = date(2022, 3, 1),
        control_mode: int = 2,
        protection: str | None = None,
        dispute: str | None = None,
        relay: RelayState = RelayState.CONNECTED,
        due_days_ago: int = 25,
    ) -> str:
        """One account with an overdue bill (and the given circumstances); returns its id."""
        self.accounts += 1
        n = self.accounts
        account_id, meter_id = f"ACC{n:06d}", f"MTR{n:06d}"
        now = self.policy_clock()
        bills = []
        if overdue_paise:
            due = (now - timedelta(days=due_days_ago)).date()
            bills.append(
                BillRecord(
                    bill_id=f"BILL{n:06d}",
                    amount_paise=overdue_paise,
                    issued_at=now - timedelta(days=due_days_ago + 15),
                    due_date=due,
                    period=(due - timedelta(days=45), due - timedelta(days=15)),
                )
            )
        record = AccountRecord(
            account_id=account_id,
            consumer_name=f"Consumer {n}",
            meter_id=meter_id,
            dcu_id=dcu_id,
            relay=relay,
            control_mode=control_mode,
            installed_on=installed_on,
            phone=f"+91980000{n:04d}",
            bills=bills,
        )
        await register_accounts(self.db, [record], now - timedelta(days=400))
        async with self.db.write() as session:
            if protection:
                session.add(
                    Protection(
                        account_id=account_id,
                        kind=protection,
                        reason="test",
                        created_at=now,
                        created_by="test",
                    )
                )
            if dispute:
                session.add(
                    Dispute(
                        account_id=account_id,
                        kind=dispute,
                        reason="test",
                        opened_at=now,
                        opened_by="test",
                    )
                )
            if notice_days_ago is not None:
                served = now - timedelta(days=notice_days_ago)
                session.add(
                    Notification(
                        account_id=account_id,
                        kind="disconnection_notice",
                        channel="hand_delivery",
                        body="notice",
                        reference=f"test-notice-{account_id}",
                        served_at=served,
                        recorded_at=served,
                    )
                )
        return account_id

    async def online(self, *dcu_ids: str) -> None:
        """Births for these DCUs (no roster: nothing to reconcile)."""
        for dcu_id in dcu_ids:
            at_ms = int(self.clock().timestamp() * 1000)
            await self.presence.handle(
                GatewayState(dcu_id=dcu_id, online=True, boot_seq=1, at_ms=at_ms, meters=[])
            )

    async def command(self, command_id: str) -> Command:
        async with self.db.read() as session:
            command = await session.get(Command, command_id)
            assert command is not None
            return command

    async def commands(self, meter_id: str) -> list[Command]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Command).where(Command.meter_id == meter_id).order_by(Command.created_at)
            )
            return list(rows.scalars())

    async def meter(self, meter_id: str) -> Meter:
        async with self.db.read() as session:
            meter = await session.get(Meter, meter_id)
            assert meter is not None
            return meter

    async def ack(
        self, command_id: str, status: AckStatus, relay: RelayState | None = None
    ) -> None:
        command = await self.command(command_id)
        await self.acks.apply_batch(
            [
                Ack(
                    command_id=command_id,
                    meter_id=command.meter_id,
                    dcu_id=command.dcu_id,
                    status=status,
                    relay=relay,
                    at_ms=int(self.clock().timestamp() * 1000),
                )
            ]
        )

    async def execute(self, command_id: str, relay: RelayState) -> None:
        """The gateway's acks for a command it ran: received, then executed."""
        await self.ack(command_id, AckStatus.RECEIVED)
        await self.ack(command_id, AckStatus.EXECUTED, relay)

    async def pay(self, account_id: str, amount_paise: int, payment_id: str) -> str | None:
        body = webhook_body(account_id, amount_paise, payment_id)
        envelope, document = parse_envelope(body)
        result = await self.intake.record(
            f"evt_{payment_id}", envelope, document, body, self.clock()
        )
        assert result.outcome is WebhookOutcome.PROCESSED
        return result.command_id

    async def total_payable(self, account_id: str) -> int:
        async with self.db.read() as session:
            return (await account_dues(session, account_id)).total_payable_paise

    async def fees(self, account_id: str) -> list[str]:
        async with self.db.read() as session:
            return [
                e.reference for e in await account_entries(session, account_id) if e.kind == "fee"
            ]

    async def messages(self, account_id: str, kind: str | None = None) -> list[Notification]:
        async with self.db.read() as session:
            query = select(Notification).where(Notification.account_id == account_id)
            if kind is not None:
                query = query.where(Notification.kind == kind)
            return list((await session.execute(query)).scalars())


@asynccontextmanager
async def policy_world(
    database_url: str, settings: PolicySettings | None = None
) -> AsyncIterator[PolicyWorld]:
    """Build a world on a fresh database; closes it afterwards."""
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    settings = settings or PolicySettings()
    book = RuleBook.from_settings(settings, load_calendar())
    clock = MovableClock(OPEN_TUESDAY)
    policy_clock = MovableClock(OPEN_TUESDAY)
    factory = CommandFactory(CommandSigner.from_b64("k1", generate_private_key_b64()), 3600)
    metrics = CloudMetrics()
    publisher = RecordingPublisher()
    notifier = RecordingNotifier()
    hooks = CommandOutcomeHooks(factory, notifier, FEE_PAISE)
    dispatcher = Dispatcher(
        db,
        publisher,
        DispatchPolicy(
            ack_timeout_s=5,
            execution_timeout_s=30,
            max_attempts=3,
            backoff_cap_s=60,
            batch=500,
            poll_s=1,
        ),
        metrics,
        clock=clock,
        on_final=[hooks.on_final],
    )
    world = PolicyWorld(
        db=db,
        clock=clock,
        policy_clock=policy_clock,
        settings=settings,
        book=book,
        factory=factory,
        publisher=publisher,
        dispatcher=dispatcher,
        acks=AckApplier(db, metrics, AckRetryPolicy(30, 3), on_final=[hooks.on_final], clock=clock),
        presence=PresenceTracker(db, factory, metrics, dispatcher.wake, clock=clock),
        intake=PaymentIntake(db, factory, dispatcher),
        runner=DisconnectionRunner(
            db,
            factory,
            settings,
            book,
            LeaseKeeper(db, "test-cloud"),
            clock=clock,
            policy_clock=policy_clock,
        ),
        issuer=CommandIssuer(factory, settings, book, clock=clock, policy_clock=policy_clock),
        notices=NoticeServer(db, notifier, settings, book, policy_clock=policy_clock),
    )
    try:
        yield world
    finally:
        await db.close()
