"""The reported relay state's ordering rule (cloud/commands/reported.py), on real databases:
births, acks, events and readings arriving in any order, with and without order keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.acks import AckApplier, AckRetryPolicy
from cloud.commands.desired import CommandFactory
from cloud.commands.dispatcher import Dispatcher, DispatchPolicy
from cloud.commands.operator import issue_manual_command
from cloud.commands.presence import EventRecorder, PresenceTracker
from cloud.commands.reported import (
    Observation,
    OrderKey,
    ReadingCorrector,
    supersedes,
    update_reported,
)
from cloud.commands.rows import lock_meters
from cloud.db.migrate import alembic_config, upgrade_to_head
from cloud.db.models import Command, Meter
from cloud.db.session import Database
from cloud.metrics import CloudMetrics
from cloud.onboarding import AccountRecord, register_accounts
from tests.conftest import BACKENDS
from wire import (
    Ack,
    AckStatus,
    Action,
    CommandSigner,
    GatewayState,
    MeterEvent,
    MeterReport,
    Reading,
    RelayState,
    TelemetryBatch,
)
from wire.signing import generate_private_key_b64

CONNECTED = RelayState.CONNECTED
DISCONNECTED = RelayState.DISCONNECTED
READY = RelayState.READY_FOR_RECONNECTION
T0_MS = 1_795_000_000_000  # gateway clock at the start of each test


def _keyed(relay: RelayState, seq: int, read_ms: int) -> Observation:
    return Observation(relay, OrderKey(seq, read_ms), read_ms)


def test_a_greater_event_sequence_wins_whatever_the_read_times() -> None:
    held = OrderKey(5, T0_MS + 9_000)
    assert supersedes(_keyed(CONNECTED, 6, T0_MS), held, None)
    assert not supersedes(_keyed(CONNECTED, 4, T0_MS + 99_000), held, None)


def test_at_one_sequence_the_later_read_wins_and_an_equal_key_keeps_what_is_held() -> None:
    held = OrderKey(5, T0_MS)
    assert supersedes(_keyed(READY, 5, T0_MS + 1), held, None)
    assert not supersedes(_keyed(READY, 5, T0_MS), held, None)
    assert not supersedes(_keyed(READY, 5, T0_MS - 1), held, None)


def test_missing_keys_never_overwrite_a_key_and_are_ordered_by_stamp_among_themselves() -> None:
    at = datetime.fromtimestamp(T0_MS / 1000, UTC)
    unkeyed = Observation(CONNECTED, None, T0_MS + 1_000)
    assert not supersedes(unkeyed, OrderKey(0, 0), None)
    assert supersedes(unkeyed, None, None)
    assert supersedes(unkeyed, None, at)
    assert not supersedes(Observation(CONNECTED, None, T0_MS - 1_000), None, at)
    assert supersedes(_keyed(CONNECTED, 0, 0), None, at + timedelta(days=1))


@dataclass
class RecordingPublisher:
    connected: bool = True
    published: list[str] = field(default_factory=list)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]:
        self.published.append(topic)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class World:
    """One DCU with two meters (both start disconnected), the cloud's consumers of reports."""

    db: Database
    factory: CommandFactory
    dispatcher: Dispatcher
    acks: AckApplier
    presence: PresenceTracker
    events: EventRecorder
    corrector: ReadingCorrector
    boots: int = 0

    async def meter(self, meter_id: str) -> Meter:
        return await self.meter_of(self.db, meter_id)

    @staticmethod
    async def meter_of(db: Database, meter_id: str) -> Meter:
        async with db.read() as session:
            meter = await session.get(Meter, meter_id)
            assert meter is not None
            return meter

    async def commands(self) -> list[Command]:
        async with self.db.read() as session:
            return list((await session.execute(select(Command))).scalars())

    async def birth(self, *reports: MeterReport, at_ms: int) -> None:
        """A birth of the next boot, stamped `at_ms` (after its reads, as a gateway stamps it)."""
        self.boots += 1
        state = GatewayState(
            dcu_id="DCU01", online=True, boot_seq=self.boots, at_ms=at_ms, meters=list(reports)
        )
        await self.presence.handle(state)

    async def connect_in_flight(self, meter_id: str) -> Command:
        """An operator's connect for the meter, published (SENT) to the online gateway."""
        command = await issue_manual_command(
            self.db,
            self.factory,
            meter_id=meter_id,
            action=Action.CONNECT,
            reason="test",
            actor="op",
        )
        assert await self.dispatcher.dispatch_once() == 1
        return command

    async def executed(self, command: Command, relay: RelayState, seq: int, read_ms: int) -> None:
        await self.acks.apply_batch([_executed(command, relay, seq, read_ms)])

    async def state_of(self, command: Command) -> str:
        async with self.db.read() as session:
            again = await session.get(Command, command.command_id)
            assert again is not None
            return again.state


def _executed(command: Command, relay: RelayState, seq: int, read_ms: int) -> Ack:
    return Ack(
        command_id=command.command_id,
        meter_id=command.meter_id,
        dcu_id="DCU01",
        status=AckStatus.EXECUTED,
        relay=relay,
        version=command.version,
        at_ms=read_ms + 50,
        event_seq=seq,
        read_ms=read_ms,
    )


def _report(meter_id: str, relay: RelayState, seq: int, read_ms: int) -> MeterReport:
    return MeterReport(
        meter_id=meter_id,
        reachable=True,
        relay=relay,
        control_mode=2,
        event_seq=seq,
        read_ms=read_ms,
    )


def _batch(*readings: Reading, read_ms: int | None, dcu_id: str = "DCU01") -> TelemetryBatch:
    return TelemetryBatch(
        dcu_id=dcu_id, batch_id=f"b{read_ms}", readings=list(readings), at_ms=T0_MS, read_ms=read_ms
    )


def _reading(meter_id: str, relay: RelayState, seq: int | None) -> Reading:
    return Reading(
        meter_id=meter_id,
        at_ms=T0_MS,
        relay=relay,
        voltage_v=230.0,
        current_a=1.0 if relay is CONNECTED else 0.0,
        active_power_w=230.0 if relay is CONNECTED else 0.0,
        power_factor=0.95,
        frequency_hz=50.0,
        import_wh=1000,
        export_wh=0,
        import_vah=1050,
        event_seq=seq,
    )


async def _build(db: Database) -> World:
    await upgrade_to_head(db.engine)
    records = [
        AccountRecord(
            account_id=f"ACC{n}",
            consumer_name=f"Consumer {n}",
            meter_id=f"MTR{n}",
            dcu_id="DCU01",
            relay=DISCONNECTED,
        )
        for n in (1, 2)
    ]
    await register_accounts(db, records, datetime.now(UTC))
    factory = CommandFactory(CommandSigner.from_b64("k1", generate_private_key_b64()), ttl_s=3600)
    metrics = CloudMetrics()
    policy = DispatchPolicy(
        ack_timeout_s=5,
        execution_timeout_s=30,
        max_attempts=3,
        backoff_cap_s=60,
        batch=10,
        poll_s=1,
    )
    dispatcher = Dispatcher(db, RecordingPublisher(), policy, metrics)
    return World(
        db=db,
        factory=factory,
        dispatcher=dispatcher,
        acks=AckApplier(db, metrics, AckRetryPolicy(30, 3)),
        presence=PresenceTracker(db, factory, metrics, dispatcher.wake),
        events=EventRecorder(db, metrics),
        corrector=ReadingCorrector(db),
    )


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    db = Database.from_url(database_url)
    try:
        yield await _build(db)
    finally:
        await db.close()


async def test_an_older_birth_roster_after_a_newer_ack_is_ignored(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    command = await world.connect_in_flight("MTR1")
    # The broker restarts; the gateway reads its roster for the birth (MTR1 still off at 2_000),
    # meanwhile runs the command (read at 2_500, event 302 makes the sequence 2), then stamps
    # the birth after both: by its stamp the roster is the newest, by the meter it is not.
    await world.executed(command, CONNECTED, seq=2, read_ms=T0_MS + 2_500)
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS + 2_000), at_ms=T0_MS + 3_000)
    meter = await world.meter("MTR1")
    assert (meter.reported_relay, meter.reported_event_seq) == ("connected", 2)
    assert await world.state_of(command) == "SUCCEEDED"
    assert len(await world.commands()) == 1, "no reconcile command for a meter that is on"


async def test_a_stale_roster_while_a_command_is_in_flight_ends_right(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    command = await world.connect_in_flight("MTR1")
    # The birth's roster (read before the command ran) is applied first: the reconciler must
    # leave the meter alone, its command being in flight, and the ack must still win after.
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS + 2_000), at_ms=T0_MS + 3_000)
    assert [c.command_id for c in await world.commands()] == [command.command_id]
    assert (await world.meter("MTR1")).reported_relay == "disconnected"
    await world.executed(command, CONNECTED, seq=2, read_ms=T0_MS + 2_500)
    meter = await world.meter("MTR1")
    assert (meter.reported_relay, meter.reported_event_seq) == ("connected", 2)
    assert meter.reported_at == datetime.fromtimestamp((T0_MS + 2_500) / 1000, UTC)
    # The next birth reads the meter as it is: nothing to reconcile.
    await world.birth(_report("MTR1", CONNECTED, 2, T0_MS + 9_000), at_ms=T0_MS + 9_100)
    assert len(await world.commands()) == 1


async def test_a_relay_event_orders_below_a_read_at_its_own_sequence(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 4, T0_MS), at_ms=T0_MS + 100)
    command = await world.connect_in_flight("MTR1")
    # A mode-1 meter: remote_reconnect arms the button (ready) and logs no event, so the read
    # after it sits at sequence 4 too; the 301 that made it sequence 4 arrives late.
    await world.executed(command, READY, seq=4, read_ms=T0_MS + 1_000)
    late = MeterEvent(
        meter_id="MTR1", dcu_id="DCU01", code=301, seq=4, at_ms=T0_MS - 60_000, relay=DISCONNECTED
    )
    await world.events.apply_batch([late])
    assert (await world.meter("MTR1")).reported_relay == "ready_for_reconnection"
    pressed = MeterEvent(
        meter_id="MTR1", dcu_id="DCU01", code=302, seq=5, at_ms=T0_MS - 1_000, relay=CONNECTED
    )
    await world.events.apply_batch([pressed])
    meter = await world.meter("MTR1")
    assert (meter.reported_relay, meter.reported_event_seq, meter.reported_read_ms) == (
        "connected",
        5,
        0,
    )


async def test_an_ack_without_a_key_does_not_overwrite_a_keyed_state(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    command = await world.connect_in_flight("MTR1")
    legacy = Ack(
        command_id=command.command_id,
        meter_id="MTR1",
        dcu_id="DCU01",
        status=AckStatus.EXECUTED,
        relay=CONNECTED,
        at_ms=T0_MS + 60_000,
    )
    await world.acks.apply_batch([legacy])
    assert await world.state_of(command) == "SUCCEEDED", "the command's lifecycle still moves"
    assert (await world.meter("MTR1")).reported_relay == "disconnected"


async def test_a_fresh_reading_corrects_a_stale_reported_state(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    # The consumer's button (or anything whose report was lost) switched MTR1 on: event 2.
    await world.corrector.correct(
        _batch(
            _reading("MTR1", CONNECTED, 2),
            _reading("MTR2", DISCONNECTED, 0),
            read_ms=T0_MS + 60_000,
        ),
    )
    meter = await world.meter("MTR1")
    assert (meter.reported_relay, meter.reported_event_seq, meter.reported_read_ms) == (
        "connected",
        2,
        T0_MS + 60_000,
    )
    assert meter.reported_at == datetime.fromtimestamp((T0_MS + 60_000) / 1000, UTC)
    # MTR2 was not in the roster: a keyed reading supersedes its onboarding state.
    assert (await world.meter("MTR2")).reported_event_seq == 0


async def test_a_reading_older_than_the_held_state_is_ignored(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    command = await world.connect_in_flight("MTR1")
    await world.executed(command, CONNECTED, seq=2, read_ms=T0_MS + 2_500)
    # Read before the command ran, delivered after it (a replayed backlog, say).
    await world.corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 1), read_ms=T0_MS + 3_000))
    await world.corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 2), read_ms=T0_MS + 2_000))
    meter = await world.meter("MTR1")
    assert (meter.reported_relay, meter.reported_event_seq) == ("connected", 2)


async def test_a_reading_that_repeats_the_held_state_writes_nothing(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 3, T0_MS), at_ms=T0_MS + 100)
    await world.corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 3), read_ms=T0_MS + 60_000))
    assert (await world.meter("MTR1")).reported_read_ms == T0_MS, "the row was rewritten"
    # At the same sequence a later read that differs does correct it (no event for "ready").
    await world.corrector.correct(_batch(_reading("MTR1", READY, 3), read_ms=T0_MS + 120_000))
    assert (await world.meter("MTR1")).reported_relay == "ready_for_reconnection"


async def test_readings_without_a_key_or_from_another_dcu_correct_nothing(world: World) -> None:
    await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
    await world.corrector.correct(_batch(_reading("MTR1", CONNECTED, None), read_ms=T0_MS + 60_000))
    await world.corrector.correct(
        _batch(_reading("MTR1", CONNECTED, 9), read_ms=T0_MS + 60_000, dcu_id="DCU02")
    )
    assert (await world.meter("MTR1")).reported_relay == "disconnected"


class AckBetweenReadAndWrite(Database):
    """The cloud database, where an ack commits just before the next write transaction begins."""

    def __init__(self, inner: Database) -> None:
        super().__init__(inner.engine)
        self.before_write: list[Ack] = []
        self.acks: AckApplier | None = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        if self.before_write and self.acks is not None:
            pending, self.before_write = self.before_write, []
            await self.acks.apply_batch(pending)
        async with super().write() as session:
            yield session


async def test_a_correction_never_overwrites_an_ack_committed_after_its_read(
    database_url: str,
) -> None:
    racing = AckBetweenReadAndWrite(Database.from_url(database_url))
    try:
        world = await _build(racing)
        await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
        command = await world.connect_in_flight("MTR1")
        racing.acks = world.acks
        # The reading (seq 2, read at 5_000) is newer than the row, so it is chosen for a write;
        # before that write an ack read at 6_000 (seq 2, ready) commits: it must stay.
        racing.before_write.append(
            Ack(
                command_id=command.command_id,
                meter_id="MTR1",
                dcu_id="DCU01",
                status=AckStatus.EXECUTED,
                relay=READY,
                version=command.version,
                at_ms=T0_MS + 6_100,
                event_seq=2,
                read_ms=T0_MS + 6_000,
            )
        )
        await ReadingCorrector(racing).correct(
            _batch(_reading("MTR1", CONNECTED, 2), read_ms=T0_MS + 5_000)
        )
        assert not racing.before_write, "the ack was not applied between read and write"
        meter = await world.meter("MTR1")
        assert (meter.reported_relay, meter.reported_read_ms) == (
            "ready_for_reconnection",
            T0_MS + 6_000,
        )
    finally:
        await racing.close()


async def _sessions_waiting_for_a_lock(db: Database) -> int:
    async with db.read() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        return int(waiting or 0)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="row locks are PostgreSQL's")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_correction_locks_meters_in_the_order_the_ack_path_does(world: World) -> None:
    await world.birth(
        _report("MTR1", DISCONNECTED, 1, T0_MS),
        _report("MTR2", DISCONNECTED, 1, T0_MS),
        at_ms=T0_MS,
    )
    # Readings listed MTR2 first: locking in that order while an ack batch holds MTR1 and then
    # asks for MTR2 would deadlock (PostgreSQL would abort one of the two after a second).
    batch = _batch(
        _reading("MTR2", CONNECTED, 2), _reading("MTR1", CONNECTED, 2), read_ms=T0_MS + 1_000
    )
    async with world.db.write() as session:
        await lock_meters(session, ["MTR1"])
        correction = asyncio.create_task(world.corrector.correct(batch))
        deadline = asyncio.get_running_loop().time() + 10
        while await _sessions_waiting_for_a_lock(world.db) == 0:
            assert not correction.done(), "the correction did not wait for the locked meter"
            assert asyncio.get_running_loop().time() < deadline, "the correction never blocked"
            await asyncio.sleep(0.02)
        await lock_meters(session, ["MTR2"])
    await asyncio.wait_for(correction, timeout=10)
    for meter_id in ("MTR1", "MTR2"):
        assert (await world.meter(meter_id)).reported_relay == "connected"


def _migrate(connection: Connection, revision: str, *, down: bool = False) -> None:
    config = alembic_config(connection)
    if down:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def test_revision_0006_upgrades_and_downgrades_a_database_holding_meters(
    database_url: str,
) -> None:
    db = Database.from_url(database_url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_migrate, "0005")
            await connection.execute(
                text(
                    "INSERT INTO meters (meter_id, dcu_id, control_mode, desired_relay,"
                    " desired_version, desired_at, reported_relay, reported_at)"
                    " VALUES ('MTR1', 'DCU01', 2, 'connected', 3, :at, 'disconnected', :at)"
                ),
                {"at": datetime(2026, 11, 30, tzinfo=UTC)},
            )
            await connection.execute(
                text(
                    "INSERT INTO accounts (account_id, consumer_name, meter_id, created_at)"
                    " VALUES ('ACC1', 'Consumer 1', 'MTR1', :at)"
                ),
                {"at": datetime(2026, 11, 30, tzinfo=UTC)},
            )
        await upgrade_to_head(db.engine)
        meter = await World.meter_of(db, "MTR1")
        assert (meter.desired_version, meter.reported_relay) == (3, "disconnected")
        assert (meter.reported_event_seq, meter.reported_read_ms) == (None, None)
        async with db.write() as session:
            row = await session.get(Meter, "MTR1", with_for_update=True)
            assert row is not None
            update_reported(row, _keyed(CONNECTED, 7, T0_MS), T0_MS)
        meter = await World.meter_of(db, "MTR1")
        assert (meter.reported_relay, meter.reported_event_seq) == ("connected", 7)
        async with db.engine.begin() as connection:
            await connection.run_sync(_migrate, "0005", down=True)
            kept = await connection.execute(text("SELECT reported_relay FROM meters"))
            assert kept.scalars().all() == ["connected"]
            accounts = await connection.execute(text("SELECT count(*) FROM accounts"))
            assert accounts.scalar() == 1
    finally:
        await db.close()


class CountingReads(Database):
    """The cloud database, counting the read sessions opened."""

    def __init__(self, url: str) -> None:
        super().__init__(Database.from_url(url).engine)
        self.reads = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        self.reads += 1
        async with super().read() as session:
            yield session


class ManualSeconds:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


async def test_a_repeated_reading_is_answered_from_memory_until_the_recheck(
    database_url: str,
) -> None:
    db = CountingReads(database_url)
    try:
        world = await _build(db)
        clock = ManualSeconds()
        corrector = ReadingCorrector(db, recheck_s=600.0, clock=clock)
        await world.birth(_report("MTR1", DISCONNECTED, 1, T0_MS), at_ms=T0_MS + 100)
        await corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 1), read_ms=T0_MS + 60_000))
        # A later report says "ready" at the same sequence; then the meter is disconnected again
        # without an event, and that switch's report is lost: only readings show it.
        await world.birth(_report("MTR1", READY, 1, T0_MS + 90_000), at_ms=T0_MS + 90_100)
        reads = db.reads
        await corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 1), read_ms=T0_MS + 120_000))
        assert db.reads == reads, "a reading that repeats the last checked one asked the database"
        assert (await world.meter("MTR1")).reported_relay == "ready_for_reconnection"
        clock.now_s += 601.0
        reads = db.reads
        await corrector.correct(_batch(_reading("MTR1", DISCONNECTED, 1), read_ms=T0_MS + 720_000))
        assert db.reads == reads + 1
        meter = await world.meter("MTR1")
        assert (meter.reported_relay, meter.reported_read_ms) == ("disconnected", T0_MS + 720_000)
        # News is checked at once: another relay, or a higher sequence, whatever the memory says.
        await corrector.correct(_batch(_reading("MTR1", CONNECTED, 2), read_ms=T0_MS + 780_000))
        assert (await world.meter("MTR1")).reported_relay == "connected"
    finally:
        await db.close()
