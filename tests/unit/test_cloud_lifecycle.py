"""The command lifecycle on a real SQLite database, with MQTT replaced by a recording publisher
behind the dispatcher's own interface, and a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cloud.commands.acks import AckApplier, AckRetryPolicy
from cloud.commands.desired import CommandFactory
from cloud.commands.dispatcher import Dispatcher, DispatchPolicy
from cloud.commands.lifecycle import CommandState
from cloud.commands.operator import issue_manual_command
from cloud.commands.presence import PresenceTracker
from cloud.db.migrate import upgrade_to_head
from cloud.db.models import Command, CommandTransition, Meter
from cloud.db.session import Database
from cloud.metrics import CloudMetrics
from cloud.onboarding import register_accounts
from cloud.payments.intake import PaymentIntake, WebhookOutcome
from cloud.payments.webhook import parse_envelope
from switchyard.demo import build_demo_fleet
from switchyard.pay import webhook_body
from wire import (
    Ack,
    AckStatus,
    Action,
    CommandSigner,
    GatewayState,
    KeyRing,
    MeterReport,
    RelayState,
    decode,
)
from wire import Command as WireCommand
from wire.signing import generate_private_key_b64, public_key_b64


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordingPublisher:
    connected: bool = True
    published: list[tuple[str, bytes, int | None]] = field(default_factory=list)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]:
        self.published.append((topic, payload, expiry_s))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Harness:
    db: Database
    clock: MovableClock
    publisher: RecordingPublisher
    dispatcher: Dispatcher
    acks: AckApplier
    presence: PresenceTracker
    intake: PaymentIntake
    factory: CommandFactory
    ring: KeyRing
    disconnected_account: str
    disconnected_meter: str

    async def command(self, command_id: str) -> Command:
        async with self.db.read() as session:
            command = await session.get(Command, command_id)
            assert command is not None
            return command

    async def meter(self, meter_id: str) -> Meter:
        async with self.db.read() as session:
            meter = await session.get(Meter, meter_id)
            assert meter is not None
            return meter

    async def birth(self, boot_seq: int = 1, reports: list[MeterReport] | None = None) -> None:
        await self.presence.handle(
            GatewayState(
                dcu_id="DCU01",
                online=True,
                boot_seq=boot_seq,
                at_ms=int(self.clock.now.timestamp() * 1000),
                meters=reports or [],
            )
        )

    async def ack(self, command_id: str, status: AckStatus, **extra: object) -> None:
        command = await self.command(command_id)
        await self.acks.apply_batch(
            [
                Ack(
                    command_id=command_id,
                    meter_id=command.meter_id,
                    dcu_id=str(extra.pop("dcu_id", command.dcu_id)),
                    status=status,
                    at_ms=int(self.clock.now.timestamp() * 1000),
                    **extra,  # type: ignore[arg-type]
                )
            ]
        )

    async def pay(self, account_id: str, amount_paise: int, payment_id: str) -> str | None:
        body = webhook_body(account_id, amount_paise, payment_id)
        envelope, document = parse_envelope(body)
        result = await self.intake.record(
            f"evt_{payment_id}", envelope, document, body, self.clock.now
        )
        assert result.outcome is WebhookOutcome.PROCESSED
        return result.command_id


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    fleet = build_demo_fleet(meters=8, gateways=1)
    clock = MovableClock()
    await register_accounts(db, fleet.accounts, clock.now)
    signer = CommandSigner.from_b64("k1", generate_private_key_b64())
    factory = CommandFactory(signer, ttl_s=3600)
    metrics = CloudMetrics()
    publisher = RecordingPublisher()
    policy = DispatchPolicy(
        ack_timeout_s=5,
        execution_timeout_s=30,
        max_attempts=3,
        backoff_cap_s=60,
        batch=100,
        poll_s=1,
    )
    dispatcher = Dispatcher(db, publisher, policy, metrics, clock=clock)
    first = fleet.disconnected()[0]
    yield Harness(
        db=db,
        clock=clock,
        publisher=publisher,
        dispatcher=dispatcher,
        acks=AckApplier(db, metrics, AckRetryPolicy(30, 3), clock=clock),
        presence=PresenceTracker(db, factory, metrics, dispatcher.wake, clock=clock),
        intake=PaymentIntake(db, factory, dispatcher),
        factory=factory,
        ring=KeyRing.from_b64({"k1": public_key_b64(signer.private_key)}),
        disconnected_account=first.account_id,
        disconnected_meter=first.meter_id,
    )
    await db.close()


async def _total_payable(h: Harness) -> int:
    from cloud.ledger.service import account_dues

    async with h.db.read() as session:
        return (await account_dues(session, h.disconnected_account)).total_payable_paise


async def test_full_payment_queues_a_signed_connect_published_once_the_gateway_is_online(
    harness: Harness,
) -> None:
    h = harness
    command_id = await h.pay(h.disconnected_account, await _total_payable(h), "pay_full")
    assert command_id is not None
    meter = await h.meter(h.disconnected_meter)
    assert (meter.desired_relay, meter.desired_version) == ("connected", 1)

    assert await h.dispatcher.dispatch_once() == 0, "gateway not yet online"
    await h.birth()
    assert await h.dispatcher.dispatch_once() == 1
    topic, payload, expiry_s = h.publisher.published[0]
    assert topic == f"sy/v1/dcu/DCU01/meter/{h.disconnected_meter}/cmd"
    wire_command = decode(WireCommand, payload)
    h.ring.verify(wire_command)
    assert (wire_command.action, wire_command.version) == (Action.CONNECT, 1)
    assert expiry_s is not None and 3500 < expiry_s <= 3600
    command = await h.command(command_id)
    assert (command.state, command.attempts) == ("SENT", 1)


async def test_acks_walk_the_lifecycle_and_record_each_transition(harness: Harness) -> None:
    h = harness
    await h.birth()
    command_id = await h.pay(h.disconnected_account, await _total_payable(h), "pay_lc")
    assert command_id is not None
    await h.dispatcher.dispatch_once()
    await h.ack(command_id, AckStatus.RECEIVED)
    assert (await h.command(command_id)).state == "DELIVERED"
    h.clock.advance(0.05)
    await h.ack(command_id, AckStatus.EXECUTED, relay=RelayState.CONNECTED, event_code=302)
    command = await h.command(command_id)
    assert (command.state, command.relay_result, command.event_code) == (
        "SUCCEEDED",
        "connected",
        302,
    )
    assert (await h.meter(h.disconnected_meter)).reported_relay == "connected"
    async with h.db.read() as session:
        steps = (
            await session.execute(
                select(CommandTransition.to_state)
                .where(CommandTransition.command_id == command_id)
                .order_by(CommandTransition.transition_id)
            )
        ).scalars()
        assert list(steps) == ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"]


async def test_executed_with_the_wrong_relay_fails(harness: Harness) -> None:
    h = harness
    await h.birth()
    command = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="t",
        actor="op",
        clock=h.clock,
    )
    await h.dispatcher.dispatch_once()
    await h.ack(command.command_id, AckStatus.EXECUTED, relay=RelayState.CONNECTED)
    assert (await h.command(command.command_id)).state == "FAILED"


async def test_newer_desired_state_supersedes_the_active_command(harness: Harness) -> None:
    h = harness
    await h.birth()
    first = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="a",
        actor="op",
        clock=h.clock,
    )
    await h.dispatcher.dispatch_once()
    second = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.CONNECT,
        reason="b",
        actor="op",
        clock=h.clock,
    )
    assert (await h.command(first.command_id)).state == CommandState.SUPERSEDED.value
    assert (second.version, first.version) == (2, 1)
    # A late ack of the superseded command changes nothing about its state.
    await h.ack(first.command_id, AckStatus.EXECUTED, relay=RelayState.DISCONNECTED)
    assert (await h.command(first.command_id)).state == CommandState.SUPERSEDED.value


async def test_no_ack_means_same_id_republished_then_timed_out(harness: Harness) -> None:
    h = harness
    await h.birth()
    command = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="t",
        actor="op",
        clock=h.clock,
    )
    for _ in range(3):
        await h.dispatcher.dispatch_once()
        h.clock.advance(3600 / 60)
    await h.dispatcher.dispatch_once()
    payloads = {payload for _, payload, _ in h.publisher.published}
    assert len(h.publisher.published) == 3 and len(payloads) == 1, "same command, same bytes"
    final = await h.command(command.command_id)
    assert (final.state, final.attempts) == ("TIMED_OUT", 3)


async def test_offline_gateway_spends_no_attempts_and_birth_republishes(harness: Harness) -> None:
    h = harness
    await h.birth(boot_seq=1)
    command = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="t",
        actor="op",
        clock=h.clock,
    )
    await h.dispatcher.dispatch_once()
    await h.presence.handle(
        GatewayState(dcu_id="DCU01", online=False, boot_seq=1, at_ms=0, meters=[])
    )
    for _ in range(10):
        h.clock.advance(120)
        await h.dispatcher.dispatch_once()
    assert (await h.command(command.command_id)).attempts == 1
    await h.birth(boot_seq=2)
    await h.dispatcher.dispatch_once()
    again = await h.command(command.command_id)
    assert (again.state, again.attempts) == ("SENT", 2)


async def test_birth_reconciles_meters_whose_reported_relay_differs(harness: Harness) -> None:
    h = harness
    h.clock.advance(10)
    reports = [
        MeterReport(meter_id="MTR000002", reachable=True, relay=RelayState.DISCONNECTED),
        MeterReport(meter_id="MTR000003", reachable=False),
    ]
    await h.birth(reports=reports)
    async with h.db.read() as session:
        commands = list((await session.execute(select(Command))).scalars())
    desired = (await h.meter("MTR000002")).desired_relay
    assert desired == "connected"
    assert [(c.meter_id, c.origin, c.action) for c in commands] == [
        ("MTR000002", "reconciler", "connect")
    ]


async def test_ack_from_another_dcu_is_ignored(harness: Harness) -> None:
    h = harness
    await h.birth()
    command = await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="t",
        actor="op",
        clock=h.clock,
    )
    await h.dispatcher.dispatch_once()
    await h.ack(
        command.command_id, AckStatus.EXECUTED, relay=RelayState.DISCONNECTED, dcu_id="DCU99"
    )
    assert (await h.command(command.command_id)).state == "SENT"


async def test_partial_payment_credits_and_queues_nothing(harness: Harness) -> None:
    h = harness
    owed = await _total_payable(h)
    assert await h.pay(h.disconnected_account, 100, "pay_part") is None
    assert await _total_payable(h) == owed - 100
    assert (await h.meter(h.disconnected_meter)).desired_relay == "disconnected"


async def _manual(h: Harness) -> Command:
    return await issue_manual_command(
        h.db,
        h.factory,
        meter_id="MTR000002",
        action=Action.DISCONNECT,
        reason="t",
        actor="op",
        clock=h.clock,
    )


async def test_rejection_of_an_unverified_copy_leaves_the_genuine_command_in_play(
    harness: Harness,
) -> None:
    h = harness
    await h.birth()
    command = await _manual(h)
    await h.dispatcher.dispatch_once()
    # A forged copy with our command id reached the gateway first; it said so, retryably.
    reason = "bad signature: signature does not verify"
    await h.ack(command.command_id, AckStatus.REJECTED, reason=reason, retryable=True)
    refused = await h.command(command.command_id)
    assert (refused.state, refused.detail) == ("SENT", reason)

    await h.ack(command.command_id, AckStatus.RECEIVED)
    await h.ack(command.command_id, AckStatus.REJECTED, reason=reason, retryable=True)
    await h.ack(command.command_id, AckStatus.EXECUTED, relay=RelayState.DISCONNECTED)
    assert (await h.command(command.command_id)).state == "SUCCEEDED"


async def test_every_attempt_refused_for_an_untrusted_key_ends_rejected(harness: Harness) -> None:
    h = harness
    await h.birth()
    command = await _manual(h)
    reason = "unknown signing key 'k1'"
    for attempt in range(1, 4):
        await h.dispatcher.dispatch_once()
        assert (await h.command(command.command_id)).attempts == attempt
        await h.ack(command.command_id, AckStatus.REJECTED, reason=reason, retryable=True)
        h.clock.advance(60)
    final = await h.command(command.command_id)
    assert (final.state, final.attempts, final.detail) == ("REJECTED", 3, reason)
    assert len(h.publisher.published) == 3


async def test_dispatcher_signs_queued_commands_again_with_the_current_key(
    harness: Harness,
) -> None:
    h = harness
    await h.birth()
    queued = await _manual(h)  # signed with k1 by the harness's factory
    current = CommandSigner.from_b64("k2", generate_private_key_b64())
    policy = DispatchPolicy(
        ack_timeout_s=5,
        execution_timeout_s=30,
        max_attempts=3,
        backoff_cap_s=60,
        batch=100,
        poll_s=1,
    )
    rotated = Dispatcher(h.db, h.publisher, policy, CloudMetrics(), clock=h.clock, signer=current)
    assert await rotated.dispatch_once() == 1

    published = decode(WireCommand, h.publisher.published[0][1])
    KeyRing.from_b64({"k2": public_key_b64(current.private_key)}).verify(published)
    original = decode(WireCommand, queued.payload)
    assert published.key_id == "k2"
    assert published.model_dump(exclude={"key_id", "signature"}) == original.model_dump(
        exclude={"key_id", "signature"}
    )
    assert (await h.command(queued.command_id)).payload == h.publisher.published[0][1].decode()


async def test_executed_overtaking_received_still_leaves_a_complete_trail(harness: Harness) -> None:
    h = harness
    await h.birth()
    command = await _manual(h)
    await h.dispatcher.dispatch_once()
    await h.ack(command.command_id, AckStatus.EXECUTED, relay=RelayState.DISCONNECTED)
    await h.ack(command.command_id, AckStatus.RECEIVED)
    async with h.db.read() as session:
        steps = (
            await session.execute(
                select(CommandTransition.to_state)
                .where(CommandTransition.command_id == command.command_id)
                .order_by(CommandTransition.transition_id)
            )
        ).scalars()
        assert list(steps) == ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"]
