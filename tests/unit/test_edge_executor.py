"""The gateway's executor against an in-memory meter link and broker: checks, dedupe, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_gateway.errors import MeterUnreachable
from edge_gateway.executor import Executor
from edge_gateway.inbox import InboxEntry, InboxStatus
from edge_gateway.lanes import MeterLanes
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.outbound import OutboundPublisher
from edge_gateway.ports import InboundMessage
from edge_gateway.presence import birth_state
from edge_gateway.store import Store
from wire import (
    Ack,
    AckStatus,
    Action,
    Command,
    CommandSigner,
    EventCode,
    KeyRing,
    MeterEvent,
    RelayState,
    decode,
    encode,
)
from wire import topics as wire_topics
from wire.clock import now_ms
from wire.ids import new_command_id
from wire.meterlink import ControlState, LinkEvent, MeterStatus
from wire.signing import generate_private_key_b64, public_key_b64

DCU = "DCU01"
SETTLE_TIMEOUT_S = 5.0
HOUR_MS = 3_600_000
MAX_ACTIVE = 8


@dataclass
class FakeMeter:
    """Just enough of DLMS IC 70 (modes 0, 1, 2) and an event log with 301/302."""

    control_mode: int = 2
    control_state: ControlState = ControlState.CONNECTED
    events: list[LinkEvent] = field(default_factory=list)
    operations: int = 0

    def status(self, meter_id: str) -> MeterStatus:
        return MeterStatus(
            meter_id=meter_id,
            control_state=self.control_state,
            output_state=self.control_state is ControlState.CONNECTED,
            control_mode=self.control_mode,
            last_event_seq=len(self.events),
        )

    def switch(self, target: ControlState) -> None:
        self.operations += 1
        was_on = self.control_state is ControlState.CONNECTED
        self.control_state = target
        is_on = target is ControlState.CONNECTED
        if was_on != is_on:
            code = EventCode.LOAD_SWITCH_CONNECTED if is_on else EventCode.LOAD_SWITCH_DISCONNECTED
            self.events.append(
                LinkEvent(seq=len(self.events) + 1, code=code, at_ms=now_ms(), control_state=target)
            )

    def remote_disconnect(self) -> None:
        if self.control_mode == 0:
            self.operations += 1  # refused by the meter: mode 0 has no disconnector
            return
        self.switch(ControlState.DISCONNECTED)

    def remote_reconnect(self) -> None:
        if self.control_state is not ControlState.DISCONNECTED or self.control_mode == 0:
            self.operations += 1
            return
        ready_modes = {1, 3, 5, 6}
        ready = self.control_mode in ready_modes
        self.switch(ControlState.READY_FOR_RECONNECTION if ready else ControlState.CONNECTED)

    def relay_events(self) -> list[int]:
        return [event.code for event in self.events]


class FakeLink:
    """In-memory MeterLink: meters by id, unreachable meters, answers lost after the act."""

    def __init__(self, meters: dict[str, FakeMeter]) -> None:
        self.meters = meters
        self.unreachable: set[str] = set()
        self.lost_operation_answers = 0

    @property
    def roster(self) -> frozenset[str]:
        return frozenset(self.meters)

    def _meter(self, meter_id: str) -> FakeMeter:
        if meter_id in self.unreachable:
            raise MeterUnreachable(meter_id, "no answer within 0.1s")
        return self.meters[meter_id]

    async def read(self, meter_id: str) -> MeterStatus:
        return self._meter(meter_id).status(meter_id)

    async def disconnect(self, meter_id: str) -> MeterStatus:
        meter = self._meter(meter_id)
        meter.remote_disconnect()
        return self._answer(meter_id, meter)

    async def reconnect(self, meter_id: str) -> MeterStatus:
        meter = self._meter(meter_id)
        meter.remote_reconnect()
        return self._answer(meter_id, meter)

    def _answer(self, meter_id: str, meter: FakeMeter) -> MeterStatus:
        if self.lost_operation_answers:
            self.lost_operation_answers -= 1
            raise MeterUnreachable(meter_id, "answer lost")
        return meter.status(meter_id)

    async def events(self, meter_id: str, since_seq: int) -> list[LinkEvent]:
        return [event for event in self._meter(meter_id).events if event.seq >= since_seq]


class FakeBroker:
    """Publisher that records messages; PUBACKs at once unless held."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.hold_pubacks = False
        self.held: list[asyncio.Future[None]] = []
        self._published = asyncio.Event()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        puback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.published.append((topic, payload))
        if self.hold_pubacks:
            self.held.append(puback)
        else:
            puback.set_result(None)
        self._published.set()
        return puback

    async def wait_published(self, count: int) -> None:
        while len(self.published) < count:
            self._published.clear()
            await self._published.wait()

    def acks(self, command_id: str | None = None) -> list[Ack]:
        acks = [decode(Ack, payload) for topic, payload in self.published if topic.endswith("/ack")]
        return [ack for ack in acks if command_id is None or ack.command_id == command_id]

    def events(self) -> list[MeterEvent]:
        return [
            decode(MeterEvent, payload)
            for topic, payload in self.published
            if topic.endswith("/event")
        ]


@dataclass
class Harness:
    """A running executor with its store, lanes and outbound publisher."""

    executor: Executor
    lanes: MeterLanes
    outbound: OutboundPublisher
    store: Store
    metrics: GatewayMetrics
    pubacked: list[str] = field(default_factory=list)

    def submit(self, command: Command | bytes, *, topic: str | None = None) -> None:
        payload = command if isinstance(command, bytes) else encode(command)
        if topic is None:
            assert isinstance(command, Command)
            topic = wire_topics.command_topic(command.dcu_id, command.meter_id)
        message = InboundMessage(topic, payload, on_puback=lambda: self.pubacked.append(topic))
        self.executor.submit(message)

    async def settle(self) -> None:
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            await self.lanes.wait_idle()
            await self.outbound.drained()


@asynccontextmanager
async def running(
    db: Path,
    link: FakeLink,
    broker: FakeBroker,
    keyring: KeyRing,
    *,
    clock: Callable[[], int] = now_ms,
) -> AsyncIterator[Harness]:
    store = await Store.open(db)
    metrics = GatewayMetrics()
    outbound = OutboundPublisher(store, broker, window=100, metrics=metrics)
    try:
        async with (
            asyncio.TaskGroup() as tasks,
            MeterLanes(max_active=MAX_ACTIVE, metrics=metrics) as lanes,
        ):
            executor = Executor(
                dcu_id=DCU,
                store=store,
                link=link,
                keyring=keyring,
                lanes=lanes,
                outbound=outbound,
                metrics=metrics,
                link_attempts=3,
                clock=clock,
            )
            publishing = tasks.create_task(outbound.run(), name="outbound")
            yield Harness(executor, lanes, outbound, store, metrics)
            publishing.cancel()
    finally:
        await store.close()


@pytest.fixture
def signer() -> CommandSigner:
    return CommandSigner.from_b64("k1", generate_private_key_b64())


@pytest.fixture
def keyring(signer: CommandSigner) -> KeyRing:
    return KeyRing.from_b64({"k1": public_key_b64(signer.private_key)})


@pytest.fixture
def link() -> FakeLink:
    return FakeLink(
        {
            "MTR1": FakeMeter(control_mode=2),
            "MTR2": FakeMeter(control_mode=1, control_state=ControlState.DISCONNECTED),
            "MTR3": FakeMeter(control_mode=0),
        }
    )


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
async def gateway(
    tmp_path: Path, link: FakeLink, broker: FakeBroker, keyring: KeyRing
) -> AsyncIterator[Harness]:
    async with running(tmp_path / "edge.sqlite3", link, broker, keyring) as harness:
        yield harness


CommandFactory = Callable[..., Command]


@pytest.fixture
def command(signer: CommandSigner) -> CommandFactory:
    def make(
        action: Action = Action.DISCONNECT,
        *,
        meter_id: str = "MTR1",
        dcu_id: str = DCU,
        version: int = 1,
        expires_at_ms: int | None = None,
        by: CommandSigner = signer,
    ) -> Command:
        issued = now_ms()
        return by.sign(
            command_id=new_command_id(),
            meter_id=meter_id,
            dcu_id=dcu_id,
            action=action,
            version=version,
            reason="unit test",
            issued_at_ms=issued,
            expires_at_ms=issued + HOUR_MS if expires_at_ms is None else expires_at_ms,
        )

    return make


def statuses(broker: FakeBroker, command_id: str) -> list[AckStatus]:
    return [ack.status for ack in broker.acks(command_id)]


async def test_valid_command_is_received_then_executed_with_its_event(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    disconnect = command(Action.DISCONNECT)
    gateway.submit(disconnect)
    await gateway.settle()

    assert statuses(broker, disconnect.command_id) == [AckStatus.RECEIVED, AckStatus.EXECUTED]
    executed = broker.acks(disconnect.command_id)[-1]
    assert executed.relay is RelayState.DISCONNECTED
    assert executed.event_code == EventCode.LOAD_SWITCH_DISCONNECTED
    assert executed.version == 1
    assert link.meters["MTR1"].operations == 1
    assert [(e.meter_id, e.code) for e in broker.events()] == [("MTR1", 301)]
    assert gateway.pubacked == [wire_topics.command_topic(DCU, "MTR1")]
    assert await gateway.store.outbound_count() == 0


def _forged(command: Command) -> Command:
    return command.model_copy(update={"action": Action.CONNECT})


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("bad_signature", AckStatus.REJECTED, "bad signature"),
        ("unknown_key", AckStatus.REJECTED, "unknown signing key"),
        ("other_dcu", AckStatus.REJECTED, "command for DCU DCU02"),
        ("not_on_roster", AckStatus.REJECTED, "meter not on this DCU"),
        ("expired", AckStatus.EXPIRED, "expired"),
    ],
)
async def test_refused_command_is_acked_and_never_touches_a_relay(
    gateway: Harness,
    link: FakeLink,
    broker: FakeBroker,
    command: CommandFactory,
    case: str,
    status: AckStatus,
    reason: str,
) -> None:
    stranger = CommandSigner.from_b64("k9", generate_private_key_b64())
    refused = {
        "bad_signature": lambda: _forged(command(Action.DISCONNECT)),
        "unknown_key": lambda: command(by=stranger),
        "other_dcu": lambda: command(dcu_id="DCU02"),
        "not_on_roster": lambda: command(meter_id="MTR77"),
        "expired": lambda: command(expires_at_ms=now_ms() - 1000),
    }[case]()
    gateway.submit(refused, topic=wire_topics.command_topic(DCU, refused.meter_id))
    await gateway.settle()

    (ack,) = broker.acks(refused.command_id)
    assert ack.status is status
    assert reason in ack.reason
    assert all(meter.operations == 0 for meter in link.meters.values())
    assert gateway.metrics.outcomes[status.value] == 1


async def test_stale_version_is_rejected_without_touching_the_relay(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    gateway.submit(command(Action.DISCONNECT, version=5))
    await gateway.settle()
    late = command(Action.CONNECT, version=4)
    gateway.submit(late)
    await gateway.settle()

    (ack,) = broker.acks(late.command_id)
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, "stale version 4 (last applied 5)")
    assert link.meters["MTR1"].control_state is ControlState.DISCONNECTED
    assert link.meters["MTR1"].operations == 1


async def test_duplicate_gets_the_stored_outcome_and_no_second_operation(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    disconnect = command(Action.DISCONNECT)
    gateway.submit(disconnect)
    await gateway.settle()
    link.meters["MTR1"].control_state = ControlState.CONNECTED  # someone reconnected locally
    gateway.submit(disconnect)
    await gateway.settle()

    acks = broker.acks(disconnect.command_id)
    assert [ack.status for ack in acks] == [AckStatus.RECEIVED, *[AckStatus.EXECUTED] * 2]
    assert acks[1] == acks[2]  # the very same stored answer
    assert link.meters["MTR1"].operations == 1
    assert gateway.metrics.commands_duplicate == 1


async def test_duplicate_of_a_rejection_is_rejected_again(
    gateway: Harness, broker: FakeBroker, command: CommandFactory
) -> None:
    forged = _forged(command())
    gateway.submit(forged)
    gateway.submit(forged)
    await gateway.settle()

    assert statuses(broker, forged.command_id) == [AckStatus.REJECTED, AckStatus.REJECTED]


async def test_relay_already_in_target_state_is_not_operated(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    connect = command(Action.CONNECT)
    gateway.submit(connect)
    await gateway.settle()

    executed = broker.acks(connect.command_id)[-1]
    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, RelayState.CONNECTED)
    assert executed.event_code is None
    assert link.meters["MTR1"].operations == 0


async def test_mode_1_meter_connect_ends_ready_for_reconnection(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    connect = command(Action.CONNECT, meter_id="MTR2")
    gateway.submit(connect)
    await gateway.settle()
    again = command(Action.CONNECT, meter_id="MTR2", version=2)
    gateway.submit(again)
    await gateway.settle()

    first, second = broker.acks(connect.command_id)[-1], broker.acks(again.command_id)[-1]
    assert (first.status, first.relay) == (AckStatus.EXECUTED, RelayState.READY_FOR_RECONNECTION)
    assert first.event_code is None  # the output stays open until the consumer's button
    assert (second.status, second.relay) == (AckStatus.EXECUTED, RelayState.READY_FOR_RECONNECTION)
    assert link.meters["MTR2"].operations == 1


async def test_mode_0_meter_cannot_disconnect_and_the_ack_says_why(
    gateway: Harness, broker: FakeBroker, command: CommandFactory
) -> None:
    disconnect = command(Action.DISCONNECT, meter_id="MTR3")
    gateway.submit(disconnect)
    await gateway.settle()

    failed = broker.acks(disconnect.command_id)[-1]
    assert (failed.status, failed.relay) == (AckStatus.FAILED, RelayState.CONNECTED)
    assert failed.reason == "relay did not reach disconnected (control_mode 0)"
    assert not failed.retryable


async def test_lost_answer_is_followed_by_a_read_not_a_second_operation(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    link.lost_operation_answers = 1
    disconnect = command(Action.DISCONNECT)
    gateway.submit(disconnect)
    await gateway.settle()

    executed = broker.acks(disconnect.command_id)[-1]
    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, RelayState.DISCONNECTED)
    assert executed.event_code == EventCode.LOAD_SWITCH_DISCONNECTED
    assert link.meters["MTR1"].operations == 1


async def test_unreachable_meter_fails_retryably_and_a_duplicate_retries_it(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    link.unreachable.add("MTR1")
    disconnect = command(Action.DISCONNECT)
    gateway.submit(disconnect)
    await gateway.settle()
    failed = broker.acks(disconnect.command_id)[-1]
    assert (failed.status, failed.reason, failed.retryable) == (
        AckStatus.FAILED,
        "meter unreachable",
        True,
    )
    assert failed.relay is None

    link.unreachable.clear()
    gateway.submit(disconnect)
    await gateway.settle()
    assert statuses(broker, disconnect.command_id) == [
        AckStatus.RECEIVED,
        AckStatus.FAILED,
        AckStatus.RECEIVED,
        AckStatus.EXECUTED,
    ]
    assert link.meters["MTR1"].operations == 1


async def test_commands_for_one_meter_run_in_arrival_order(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory
) -> None:
    off, on = command(Action.DISCONNECT, version=1), command(Action.CONNECT, version=2)
    gateway.submit(off)
    gateway.submit(on)
    await gateway.settle()

    assert statuses(broker, off.command_id)[-1] is AckStatus.EXECUTED
    assert statuses(broker, on.command_id)[-1] is AckStatus.EXECUTED
    assert link.meters["MTR1"].relay_events() == [301, 302]
    assert link.meters["MTR1"].control_state is ControlState.CONNECTED


async def test_malformed_payload_is_rejected_and_does_not_block_the_next_command(
    gateway: Harness, broker: FakeBroker, command: CommandFactory
) -> None:
    topic = wire_topics.command_topic(DCU, "MTR1")
    salvageable = command()
    broken = encode(salvageable).replace(b'"version":1', b'"version":"one"')
    gateway.submit(broken, topic=topic)
    gateway.submit(b"\xff not json", topic=topic)
    good = command(Action.DISCONNECT, version=2)
    gateway.submit(good)
    await gateway.settle()

    (rejected,) = broker.acks(salvageable.command_id)
    assert rejected.status is AckStatus.REJECTED
    assert rejected.reason.startswith("malformed command: version")
    assert statuses(broker, good.command_id)[-1] is AckStatus.EXECUTED
    assert gateway.metrics.commands_malformed == 2
    assert len(gateway.pubacked) == 3  # nothing is left holding a broker flow-control slot


async def test_accepted_entry_left_by_a_crash_is_completed_once_after_restart(
    tmp_path: Path, link: FakeLink, keyring: KeyRing, command: CommandFactory
) -> None:
    db = tmp_path / "edge.sqlite3"
    disconnect = command(Action.DISCONNECT, version=3)
    await _crash_after_inbox_write(db, disconnect)

    broker = FakeBroker()
    async with running(db, link, broker, keyring) as restarted:
        assert await restarted.executor.resume_unfinished() == 1
        await restarted.settle()
        restarted.submit(disconnect)  # the broker redelivers what was never PUBACKed
        await restarted.settle()

    assert statuses(broker, disconnect.command_id) == [AckStatus.EXECUTED, AckStatus.EXECUTED]
    assert broker.acks(disconnect.command_id)[0].event_code == EventCode.LOAD_SWITCH_DISCONNECTED
    assert link.meters["MTR1"].operations == 1
    assert link.meters["MTR1"].relay_events() == [301]


async def test_recovery_does_not_operate_a_relay_that_already_switched(
    tmp_path: Path, link: FakeLink, keyring: KeyRing, command: CommandFactory
) -> None:
    db = tmp_path / "edge.sqlite3"
    disconnect = command(Action.DISCONNECT)
    await _crash_after_inbox_write(db, disconnect)
    await link.disconnect("MTR1")  # the operation ran; the crash came before its outcome

    broker = FakeBroker()
    async with running(db, link, broker, keyring) as restarted:
        await restarted.executor.resume_unfinished()
        await restarted.settle()

    (executed,) = broker.acks(disconnect.command_id)
    assert (executed.status, executed.relay) == (AckStatus.EXECUTED, RelayState.DISCONNECTED)
    assert executed.event_code == EventCode.LOAD_SWITCH_DISCONNECTED
    assert link.meters["MTR1"].operations == 1


async def test_command_that_expired_during_the_outage_is_not_carried_out_late(
    tmp_path: Path, link: FakeLink, keyring: KeyRing, command: CommandFactory
) -> None:
    db = tmp_path / "edge.sqlite3"
    disconnect = command(Action.DISCONNECT, expires_at_ms=now_ms() + 60_000)
    await _crash_after_inbox_write(db, disconnect)

    broker = FakeBroker()
    back_after_two_minutes = lambda: now_ms() + 120_000  # noqa: E731
    async with running(db, link, broker, keyring, clock=back_after_two_minutes) as restarted:
        await restarted.executor.resume_unfinished()
        await restarted.settle()

    (ack,) = broker.acks(disconnect.command_id)
    assert ack.status is AckStatus.EXPIRED
    assert link.meters["MTR1"].operations == 0


async def test_acks_wait_in_the_store_until_the_broker_pubacks_them(
    gateway: Harness, broker: FakeBroker, command: CommandFactory
) -> None:
    broker.hold_pubacks = True
    gateway.submit(command())
    async with asyncio.timeout(SETTLE_TIMEOUT_S):
        await gateway.lanes.wait_idle()
        await broker.wait_published(3)  # received, executed, one event
    assert await gateway.store.outbound_count() == 3

    for puback in broker.held:
        puback.set_result(None)
    await gateway.settle()
    assert await gateway.store.outbound_count() == 0


async def _crash_after_inbox_write(db: Path, command: Command) -> None:
    """What the crash point leaves behind: the accepted row, its version and `received` ack."""
    store = await Store.open(db)
    try:
        entry = InboxEntry(
            command_id=command.command_id,
            meter_id=command.meter_id,
            version=command.version,
            action=command.action,
            status=InboxStatus.ACCEPTED,
            expires_at_ms=command.expires_at_ms,
            received_at_ms=now_ms(),
        )
        await store.save(entry, applies_version=True)
    finally:
        await store.close()


@pytest.mark.parametrize("copy", ["bad_signature", "unknown_key", "wrong_topic"])
async def test_a_refused_copy_arriving_first_does_not_block_the_genuine_command(
    gateway: Harness, link: FakeLink, broker: FakeBroker, command: CommandFactory, copy: str
) -> None:
    genuine = command(Action.DISCONNECT)
    stranger = CommandSigner.from_b64("k9", generate_private_key_b64())
    if copy == "bad_signature":
        gateway.submit(_forged(genuine))
    elif copy == "unknown_key":
        gateway.submit(stranger.resign(genuine))
    else:  # the genuine payload, misdelivered on another meter's topic
        gateway.submit(genuine, topic=wire_topics.command_topic(DCU, "MTR2"))
    await gateway.settle()
    gateway.submit(genuine)
    await gateway.settle()

    acks = broker.acks(genuine.command_id)
    assert [ack.status for ack in acks] == [
        AckStatus.REJECTED,
        AckStatus.RECEIVED,
        AckStatus.EXECUTED,
    ]
    assert acks[0].retryable, "the refusal of a copy is not the genuine command's final answer"
    assert link.meters["MTR1"].control_state is ControlState.DISCONNECTED
    assert link.meters["MTR2"].operations == 0


async def test_refusals_of_genuine_commands_are_still_stored_and_final(
    gateway: Harness, broker: FakeBroker, command: CommandFactory
) -> None:
    expired = command(expires_at_ms=now_ms() - 1000)
    gateway.submit(expired)
    gateway.submit(expired)
    await gateway.settle()

    acks = broker.acks(expired.command_id)
    assert [(ack.status, ack.retryable) for ack in acks] == [(AckStatus.EXPIRED, False)] * 2
    assert gateway.metrics.commands_duplicate == 1


class SteppingClock:
    """The gateway's clock in one test; StampingLink moves it on."""

    def __init__(self) -> None:
        self.now_ms = now_ms()

    def __call__(self) -> int:
        return self.now_ms


class StampingLink(FakeLink):
    """FakeLink that notes when (gateway clock) each request began, then lets 10 ms pass."""

    def __init__(self, meters: dict[str, FakeMeter], clock: SteppingClock) -> None:
        super().__init__(meters)
        self.clock = clock
        self.started_ms: list[tuple[str, int]] = []

    def _began(self, op: str) -> None:
        self.started_ms.append((op, self.clock.now_ms))
        self.clock.now_ms += 10

    async def read(self, meter_id: str) -> MeterStatus:
        self._began("read")
        return await super().read(meter_id)

    async def reconnect(self, meter_id: str) -> MeterStatus:
        self._began("reconnect")
        return await super().reconnect(meter_id)


async def test_an_ack_places_its_read_back_in_the_meters_history(
    tmp_path: Path, broker: FakeBroker, keyring: KeyRing, command: CommandFactory
) -> None:
    clock = SteppingClock()
    meter = FakeMeter(control_mode=2, control_state=ControlState.DISCONNECTED)
    meter.events.append(
        LinkEvent(seq=1, code=301, at_ms=0, control_state=ControlState.DISCONNECTED)
    )
    link = StampingLink({"MTR1": meter}, clock)
    async with running(tmp_path / "edge.sqlite3", link, broker, keyring, clock=clock) as gateway:
        connect = command(Action.CONNECT)
        gateway.submit(connect)
        await gateway.settle()
        gateway.submit(connect)  # a redelivery: answered from the inbox
        await gateway.settle()
    received, executed, duplicate = broker.acks(connect.command_id)
    assert (received.event_seq, received.read_ms) == (None, None)
    # Read back by the reconnect itself, after the 302 made the sequence 2; stamped when the
    # reconnect request began, not when its answer came.
    assert [op for op, _ in link.started_ms] == ["read", "reconnect"]
    assert (executed.relay, executed.event_seq) == (RelayState.CONNECTED, 2)
    assert executed.read_ms == link.started_ms[1][1] < executed.at_ms
    assert duplicate == executed


class SlowReadLink(FakeLink):
    """FakeLink whose reads answer 20 ms later, noting when (wall clock) each answered."""

    def __init__(self, meters: dict[str, FakeMeter]) -> None:
        super().__init__(meters)
        self.answered_ms: dict[str, int] = {}

    async def read(self, meter_id: str) -> MeterStatus:
        await asyncio.sleep(0.02)
        self.answered_ms[meter_id] = now_ms()
        return await super().read(meter_id)


async def test_a_birth_stamps_each_roster_read_before_it_and_the_birth_after_all(
    tmp_path: Path, link: FakeLink
) -> None:
    link.meters["MTR2"].switch(ControlState.CONNECTED)  # its log now holds one event
    slow = SlowReadLink(link.meters)
    slow.unreachable.add("MTR3")
    store = await Store.open(tmp_path / "edge.sqlite3")
    try:
        before_ms = now_ms()
        state = await birth_state(DCU, 1, slow, store)
    finally:
        await store.close()
    reports = {report.meter_id: report for report in state.meters}
    for meter_id, seq in (("MTR1", 0), ("MTR2", 1)):
        report = reports[meter_id]
        assert report.event_seq == seq
        assert report.read_ms is not None
        assert before_ms <= report.read_ms < slow.answered_ms[meter_id] <= state.at_ms
    assert (reports["MTR3"].reachable, reports["MTR3"].event_seq) == (False, None)
