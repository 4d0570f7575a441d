"""The gateway's telemetry: bounded backlog, drops counted, live first, backlog replayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from edge_gateway.errors import NotDelivered, PublishError
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.store import OutboundKind, OutboundMessage, Store
from edge_gateway.telemetry import PROFILE_BLOCKS_PER_METER, TelemetryCollector
from edge_gateway.telemetry_buffer import (
    BacklogBounds,
    BatchedTotals,
    DropTotals,
    TelemetryBuffer,
    read_batched_totals,
)
from edge_gateway.telemetry_publisher import TelemetryPublisher
from firmware_sim.clock import ManualClock
from firmware_sim.fleet import Fleet, FleetSpec, MeterSpec
from tests.support.wait import wait_for_async
from wire import LoadProfileBlock, Reading, RelayState, TelemetryBatch, decode, encode
from wire.messages import PROFILE_BLOCK_MS

DEADLINE_S = 5.0
ROOMY = BacklogBounds(max_batches=1000, max_bytes=1 << 30, max_age_s=86_400.0)
DCU = "DCU01"


class WallClock:
    """The gateway's clock in these tests: moves only when told."""

    def __init__(self, now_ms: int = 1_800_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "edge.sqlite3")
    yield opened
    await opened.close()


def _payload(n: int, size: int = 10) -> bytes:
    return b"%d:" % n + b"x" * size


async def _append(buffer: TelemetryBuffer, n: int, *, entries: int = 5, size: int = 10) -> None:
    await buffer.append(lambda _dropped: _payload(n, size), entries=entries, profile_cursors={})


async def _stored(buffer: TelemetryBuffer) -> list[int]:
    return [int(row.payload.split(b":")[0]) for row in await buffer.oldest(10_000)]


async def test_count_bound_drops_the_oldest_and_counts_their_readings(store: Store) -> None:
    buffer = TelemetryBuffer(store, BacklogBounds(3, 1 << 30, 86_400.0))
    await store.save(None, [OutboundMessage(OutboundKind.ACK, "sy/v1/dcu/D/meter/M/ack", b"a")])
    for n in range(1, 6):
        await _append(buffer, n)

    assert await _stored(buffer) == [3, 4, 5]
    assert await buffer.totals() == DropTotals(batches=2, entries=10)
    assert await store.outbound_count() == 1  # acks are never dropped for telemetry


async def test_byte_bound_and_age_bound_drop_oldest_first(store: Store) -> None:
    clock = WallClock()
    by_bytes = TelemetryBuffer(store, BacklogBounds(1000, 100, 86_400.0), clock=clock)
    for n in range(1, 5):
        await _append(by_bytes, n, size=40)  # ~43 bytes each: two fit in 100
    assert await _stored(by_bytes) == [3, 4]

    by_age = TelemetryBuffer(store, BacklogBounds(1000, 1 << 30, 60.0), clock=clock)
    clock.now_ms += 61_000  # rows 3 and 4 are now too old
    await _append(by_age, 5)
    assert await _stored(by_age) == [5]
    totals = await by_age.totals()
    assert (totals.batches, totals.entries) == (4, 20)


async def test_rows_in_the_clients_hands_are_never_dropped(store: Store) -> None:
    buffer = TelemetryBuffer(store, BacklogBounds(2, 1 << 30, 86_400.0))
    await _append(buffer, 1)
    first = (await buffer.oldest(1))[0]
    for n in range(2, 5):
        await buffer.append(
            lambda _d, n=n: _payload(n), entries=5, profile_cursors={}, keep=[first.id]
        )
    assert await _stored(buffer) == [1, 4]  # 1 is kept (in flight) and counts against the bound


async def test_drop_totals_survive_a_restart_and_travel_in_the_batch_that_caused_them(
    tmp_path: Path,
) -> None:
    db = tmp_path / "edge.sqlite3"
    store = await Store.open(db)
    buffer = TelemetryBuffer(store, BacklogBounds(1, 1 << 30, 86_400.0))
    await _append(buffer, 1, entries=7)
    await _append(buffer, 2, entries=3)  # drops batch 1
    await store.close()

    reopened = await Store.open(db)
    try:
        buffer = TelemetryBuffer(reopened, BacklogBounds(1, 1 << 30, 86_400.0))
        built_with: list[int] = []

        def build(dropped: int) -> bytes:
            built_with.append(dropped)
            return b"3:"

        appended = await buffer.append(build, entries=1, profile_cursors={})  # drops batch 2
        stored = await buffer.oldest(10)
    finally:
        await reopened.close()
    assert built_with[-1] == 10  # the stored payload counts its own drop and the earlier one
    assert [row.payload for row in stored] == [b"3:"]
    assert (appended.totals.batches, appended.totals.entries) == (2, 10)


class FakeMqtt:
    """A ConnectedPublisher whose connection and PUBACKs the test controls."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.published: list[TelemetryBatch] = []
        self.pubacks: list[asyncio.Future[None]] = []
        self._changed = asyncio.Event()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        if not self.connected:
            raise PublishError(topic, "no connection")
        puback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.published.append(decode(TelemetryBatch, payload))
        self.pubacks.append(puback)
        self._changed.set()
        return puback

    def ack_all(self) -> None:
        for puback in self.pubacks:
            if not puback.done():
                puback.set_result(None)

    async def wait_published(self, count: int) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while len(self.published) < count:
                self._changed.clear()
                await self._changed.wait()


def _batch_payload(n: int) -> bytes:
    return encode(TelemetryBatch(dcu_id=DCU, batch_id=f"b{n}"))


async def _store_batch(buffer: TelemetryBuffer, n: int) -> None:
    await buffer.append(lambda _d: _batch_payload(n), entries=1, profile_cursors={})


async def test_backlog_replays_marked_historical_within_its_window_while_live_goes_first(
    store: Store,
) -> None:
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt(connected=False)
    metrics = GatewayMetrics()
    publisher = TelemetryPublisher(buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=metrics)
    running = asyncio.create_task(publisher.run())
    try:
        for n in range(1, 6):  # read while the uplink is down
            appended = await buffer.append(
                lambda _d, n=n: _batch_payload(n), entries=1, profile_cursors={}
            )
            publisher.offer(appended.row)
        await asyncio.sleep(0)
        assert mqtt.published == []

        mqtt.connected = True
        publisher.wake()
        await mqtt.wait_published(2)
        live = await buffer.append(lambda _d: _batch_payload(99), entries=1, profile_cursors={})
        publisher.offer(live.row)  # fresh readings do not wait behind the backlog
        assert [(b.batch_id, b.historical) for b in mqtt.published] == [
            ("b1", True),
            ("b2", True),
            ("b99", False),
        ]
        while len(mqtt.published) < 6:
            mqtt.ack_all()
            await mqtt.wait_published(len(mqtt.published) + 1)
        mqtt.ack_all()
        async with asyncio.timeout(DEADLINE_S):
            await publisher.settled()
    finally:
        running.cancel()
    assert [b.batch_id for b in mqtt.published if b.historical] == ["b1", "b2", "b3", "b4", "b5"]
    assert await buffer.count() == 0
    assert (metrics.telemetry_replayed, metrics.telemetry_live) == (5, 1)


async def test_a_batch_left_by_an_earlier_run_is_replayed_once(tmp_path: Path) -> None:
    db = tmp_path / "edge.sqlite3"
    store = await Store.open(db)
    await _store_batch(TelemetryBuffer(store, ROOMY), 1)
    await store.close()

    store = await Store.open(db)
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt()
    publisher = TelemetryPublisher(
        buffer, mqtt, dcu_id=DCU, replay_window=4, metrics=GatewayMetrics()
    )
    running = asyncio.create_task(publisher.run())
    try:
        publisher.wake()
        await mqtt.wait_published(1)
        mqtt.ack_all()
        async with asyncio.timeout(DEADLINE_S):
            await publisher.settled()
        publisher.wake()
        await asyncio.sleep(0.05)  # nothing more may come: the row was deleted on PUBACK
    finally:
        running.cancel()
        await store.close()
    assert [(b.batch_id, b.historical) for b in mqtt.published] == [("b1", True)]


class SlowDeletes(TelemetryBuffer):
    """The real buffer, whose deletes wait until the test lets them commit."""

    gate: asyncio.Event

    async def delete(self, row_ids: Sequence[int]) -> None:
        await self.gate.wait()
        await super().delete(row_ids)


async def test_a_row_acknowledged_while_its_deletion_waits_is_not_resent(store: Store) -> None:
    buffer = SlowDeletes(store, ROOMY)
    buffer.gate = asyncio.Event()
    for n in range(1, 4):
        await _store_batch(buffer, n)
    mqtt = FakeMqtt()
    publisher = TelemetryPublisher(
        buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=GatewayMetrics()
    )
    running = asyncio.create_task(publisher.run())
    try:
        publisher.wake()
        await mqtt.wait_published(2)
        mqtt.pubacks[0].set_result(None)  # b1's deletion starts and waits on the gate
        await asyncio.sleep(0.05)
        mqtt.pubacks[1].set_result(None)  # b2 acknowledged while b1's deletion is pending
        await asyncio.sleep(0.05)
        buffer.gate.set()
        while len(mqtt.published) < 3:
            await mqtt.wait_published(len(mqtt.published) + 1)
            mqtt.ack_all()
        async with asyncio.timeout(DEADLINE_S):
            await publisher.settled()
    finally:
        running.cancel()
    assert [b.batch_id for b in mqtt.published] == ["b1", "b2", "b3"]
    assert await buffer.count() == 0


class FleetSource:
    """The TelemetrySource seam served by real simulated meters, without a socket."""

    def __init__(self, fleet: Fleet) -> None:
        self._meters = fleet.on_dcu(DCU)

    @property
    def roster(self) -> frozenset[str]:
        return frozenset(self._meters)

    async def readings(self, meter_ids: Sequence[str] | None = None) -> list[Reading]:
        ids = meter_ids if meter_ids is not None else sorted(self._meters)
        return [self._meters[m].reading() for m in ids]

    async def profile(self, meter_id: str, since_ms: int) -> list[LoadProfileBlock]:
        return self._meters[meter_id].profile_since(since_ms)


async def test_collector_sends_every_profile_block_once_and_the_drop_count(store: Store) -> None:
    start_ms = 1_800_000_000_000 - 1_800_000_000_000 % PROFILE_BLOCK_MS + 60_000
    clock = ManualClock(start_ms)
    spec = FleetSpec(
        meters=[
            MeterSpec(meter_id="MTR1", dcu_id=DCU),
            MeterSpec(meter_id="MTR2", dcu_id=DCU, relay=RelayState.DISCONNECTED),
        ]
    )
    fleet = Fleet.from_spec(spec, clock, seed=3)
    buffer = TelemetryBuffer(store, BacklogBounds(2, 1 << 30, 86_400.0))
    mqtt = FakeMqtt(connected=False)
    metrics = GatewayMetrics()
    publisher = TelemetryPublisher(buffer, mqtt, dcu_id=DCU, replay_window=4, metrics=metrics)
    collector = TelemetryCollector(
        FleetSource(fleet), buffer, publisher, dcu_id=DCU, metrics=metrics
    )
    batches: list[TelemetryBatch] = []
    for _ in range(12):  # 12 polls, 7 minutes of meter time apart
        await collector.collect_once()
        batches.extend(decode(TelemetryBatch, row.payload) for row in await buffer.oldest(100))
        await buffer.delete([row.id for row in await buffer.oldest(100)])
        clock.advance(7 * 60_000)

    blocks = [(b.meter_id, b.block_start_ms) for batch in batches for b in batch.profile]
    assert len(blocks) == len(set(blocks)), "a profile block was sent twice"
    for meter_id in ("MTR1", "MTR2"):
        starts = sorted(start for m, start in blocks if m == meter_id)
        assert starts == [start_ms - 60_000 + i * PROFILE_BLOCK_MS for i in range(len(starts))]
        assert len(starts) == 5  # 78 minutes into the first block's hour: five have closed
    open_relay = [r for batch in batches for r in batch.readings if r.meter_id == "MTR2"]
    assert all(r.active_power_w == 0 and r.current_a == 0 for r in open_relay)
    assert {b.import_wh for batch in batches for b in batch.profile if b.meter_id == "MTR2"} == {0}
    assert all(batch.at_ms > 0 and batch.dcu_id == DCU for batch in batches)

    # With the uplink down and room for two batches, the third and fourth polls each drop the
    # oldest batch (two readings), and each stored batch carries the drop total so far.
    for _ in range(4):
        clock.advance(60_000)
        await collector.collect_once()
    stored = [decode(TelemetryBatch, row.payload) for row in await buffer.oldest(100)]
    assert [batch.dropped_readings for batch in stored] == [2, 4]
    assert (metrics.telemetry_dropped_batches, metrics.telemetry_dropped_entries) == (2, 4)


class SlowFleetSource(FleetSource):
    """Readings that take 250 ms of the gateway's clock to come back, and switch MTR2 on."""

    def __init__(self, fleet: Fleet, gateway_clock: WallClock) -> None:
        super().__init__(fleet)
        self._fleet = fleet
        self._gateway_clock = gateway_clock

    async def readings(self, meter_ids: Sequence[str] | None = None) -> list[Reading]:
        self._gateway_clock.now_ms += 250
        self._fleet.on_dcu(DCU)["MTR2"].remote_reconnect()
        return await super().readings(meter_ids)


async def test_a_batch_says_when_its_reads_began_and_each_reading_its_event_sequence(
    store: Store,
) -> None:
    clock = ManualClock(1_800_000_000_000)
    spec = FleetSpec(
        meters=[
            MeterSpec(meter_id="MTR1", dcu_id=DCU),
            MeterSpec(meter_id="MTR2", dcu_id=DCU, relay=RelayState.DISCONNECTED),
        ]
    )
    fleet = Fleet.from_spec(spec, clock, seed=3)
    gateway_clock = WallClock(1_800_000_000_000)
    buffer = TelemetryBuffer(store, ROOMY)
    metrics = GatewayMetrics()
    publisher = TelemetryPublisher(
        buffer, FakeMqtt(connected=False), dcu_id=DCU, replay_window=4, metrics=metrics
    )
    collector = TelemetryCollector(
        SlowFleetSource(fleet, gateway_clock),
        buffer,
        publisher,
        dcu_id=DCU,
        metrics=metrics,
        clock=gateway_clock,
    )
    await collector.collect_once()
    (row,) = await buffer.oldest(10)
    batch = decode(TelemetryBatch, row.payload)
    assert (batch.read_ms, batch.at_ms) == (1_800_000_000_000, 1_800_000_000_250)
    seqs = {r.meter_id: (r.relay, r.event_seq) for r in batch.readings}
    assert seqs == {"MTR1": (RelayState.CONNECTED, 0), "MTR2": (RelayState.CONNECTED, 1)}


async def test_batched_readings_are_counted_durably_and_survive_sending(
    store: Store, tmp_path: Path
) -> None:
    buffer = TelemetryBuffer(store, BacklogBounds(100, 1 << 30, 86_400.0))
    first = await buffer.append(lambda _d: _payload(1), entries=4, profile_cursors={}, readings=3)
    await buffer.append(lambda _d: _payload(2), entries=2, profile_cursors={}, readings=2)
    await buffer.delete([first.row.id])  # acknowledged and forgotten: the count stays

    totals = read_batched_totals(tmp_path / "edge.sqlite3")
    assert totals == BatchedTotals(readings=5, dropped_entries=0, unsent_batches=1)


async def test_a_meter_back_after_days_catches_up_in_bounded_batches(store: Store) -> None:
    start_ms = 1_800_000_000_000 - 1_800_000_000_000 % PROFILE_BLOCK_MS
    clock = ManualClock(start_ms)
    fleet = Fleet.from_spec(
        FleetSpec(meters=[MeterSpec(meter_id="MTR1", dcu_id=DCU)]), clock, seed=3
    )
    buffer = TelemetryBuffer(store, BacklogBounds(1000, 1 << 30, 86_400.0 * 30))
    metrics = GatewayMetrics()
    publisher = TelemetryPublisher(
        buffer, FakeMqtt(connected=False), dcu_id=DCU, replay_window=4, metrics=metrics
    )
    collector = TelemetryCollector(
        FleetSource(fleet), buffer, publisher, dcu_id=DCU, metrics=metrics
    )
    await collector.collect_once()  # the first poll sets the cursor at the open block
    # 90 closed blocks wait in the meter (it keeps a day): more than one batch may carry.
    clock.advance(90 * PROFILE_BLOCK_MS + 60_000)
    for _ in range(20):
        await collector.collect_once()
    batches = [decode(TelemetryBatch, row.payload) for row in await buffer.oldest(1000)]
    per_batch = [len(batch.profile) for batch in batches if batch.profile]
    assert max(per_batch) == PROFILE_BLOCKS_PER_METER
    starts = [b.block_start_ms for batch in batches for b in batch.profile]
    assert starts == [start_ms + i * PROFILE_BLOCK_MS for i in range(90)]


async def test_a_pubacked_batch_is_held_and_resent_if_the_broker_goes_away_first(
    store: Store,
) -> None:
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt()
    hold_s = 0.2
    publisher = TelemetryPublisher(
        buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=GatewayMetrics(), hold_s=hold_s
    )
    running = asyncio.create_task(publisher.run())
    try:
        appended = await buffer.append(lambda _d: _batch_payload(1), entries=1, profile_cursors={})
        publisher.offer(appended.row)
        await mqtt.wait_published(1)
        mqtt.ack_all()  # the broker has it in memory, maybe not yet on disk
        await wait_for_async("b1's row deleted", lambda: publisher.in_flight == frozenset())
        assert await buffer.count() == 0
        # The broker dies within the hold and the gateway reconnects: b1 goes again.
        mqtt.connected = False
        await asyncio.sleep(hold_s * 2)  # past the hold, but never on a live connection
        mqtt.connected = True
        publisher.wake()
        await mqtt.wait_published(2)
        assert [(b.batch_id, b.historical) for b in mqtt.published] == [
            ("b1", False),
            ("b1", True),
        ]
        mqtt.ack_all()
        # On a connection that stays up the hold ends: a later reconnect resends nothing.
        await asyncio.sleep(hold_s * 2)
        publisher.wake()
        await asyncio.sleep(0.05)
    finally:
        running.cancel()
    assert len(mqtt.published) == 2


async def test_a_batch_never_pubacked_before_a_reconnect_goes_again(store: Store) -> None:
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt()
    publisher = TelemetryPublisher(
        buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=GatewayMetrics()
    )
    running = asyncio.create_task(publisher.run())
    try:
        appended = await buffer.append(lambda _d: _batch_payload(1), entries=1, profile_cursors={})
        publisher.offer(appended.row)
        await mqtt.wait_published(1)
        # The broker comes back from a save that never knew b1: its PUBACK never comes.
        mqtt.pubacks.clear()
        publisher.wake()
        await mqtt.wait_published(2)
        mqtt.ack_all()
        async with asyncio.timeout(DEADLINE_S):
            await publisher.settled()
    finally:
        running.cancel()
    assert [(b.batch_id, b.historical) for b in mqtt.published] == [("b1", False), ("b1", True)]
    assert await buffer.count() == 0


async def test_a_batch_no_subscriber_took_stays_stored_and_goes_again(store: Store) -> None:
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt()
    metrics = GatewayMetrics()
    publisher = TelemetryPublisher(buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=metrics)
    running = asyncio.create_task(publisher.run())
    try:
        appended = await buffer.append(lambda _d: _batch_payload(1), entries=1, profile_cursors={})
        publisher.offer(appended.row)
        await mqtt.wait_published(1)
        mqtt.pubacks[0].set_exception(NotDelivered("t"))  # nobody subscribed: nobody has it
        await mqtt.wait_published(2)
        assert await buffer.count() == 1
        mqtt.ack_all()
        async with asyncio.timeout(DEADLINE_S):
            await publisher.settled()
    finally:
        running.cancel()
    assert [(b.batch_id, b.historical) for b in mqtt.published] == [("b1", False), ("b1", True)]
    assert await buffer.count() == 0
    assert (metrics.outbound_undelivered, metrics.telemetry_replayed) == (1, 1)


async def test_a_held_copy_no_subscriber_took_after_a_reconnect_goes_again(store: Store) -> None:
    buffer = TelemetryBuffer(store, ROOMY)
    mqtt = FakeMqtt()
    publisher = TelemetryPublisher(
        buffer, mqtt, dcu_id=DCU, replay_window=2, metrics=GatewayMetrics(), hold_s=30.0
    )
    running = asyncio.create_task(publisher.run())
    try:
        appended = await buffer.append(lambda _d: _batch_payload(1), entries=1, profile_cursors={})
        publisher.offer(appended.row)
        await mqtt.wait_published(1)
        mqtt.ack_all()
        await wait_for_async("b1's row deleted", lambda: publisher.in_flight == frozenset())
        # The broker restarts from a save without the cloud's subscription: the held copy is
        # resent, taken and dropped; it must go once more.
        mqtt.connected = False
        mqtt.connected = True
        publisher.wake()
        await mqtt.wait_published(2)
        mqtt.pubacks[1].set_exception(NotDelivered("t"))
        await mqtt.wait_published(3)
        mqtt.ack_all()
    finally:
        running.cancel()
    assert [(b.batch_id, b.historical) for b in mqtt.published] == [
        ("b1", False),
        ("b1", True),
        ("b1", True),
    ]
