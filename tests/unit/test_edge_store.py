"""The gateway's SQLite store and durable outbound queue: group commit, isolation, replay."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from edge_gateway.errors import NotDelivered, PublishError, StoreError
from edge_gateway.inbox import InboxEntry, InboxStatus
from edge_gateway.metrics import GatewayMetrics
from edge_gateway.outbound import OutboundPublisher
from edge_gateway.sqlite_writer import SqliteWriter
from edge_gateway.store import OutboundKind, OutboundMessage, Store
from wire import Action, RelayState
from wire.clock import now_ms
from wire.ids import new_command_id
from wire.meterlink import ControlState, MeterStatus

DEADLINE_S = 5.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "edge.sqlite3")
    yield opened
    await opened.close()


def _accepted(meter_id: str = "MTR1", version: int = 1) -> InboxEntry:
    return InboxEntry(
        command_id=new_command_id(),
        meter_id=meter_id,
        version=version,
        action=Action.DISCONNECT,
        status=InboxStatus.ACCEPTED,
        expires_at_ms=now_ms() + 60_000,
        received_at_ms=now_ms(),
    )


def _ack_message(n: int) -> OutboundMessage:
    return OutboundMessage(OutboundKind.ACK, f"sy/v1/dcu/DCU01/meter/MTR{n}/ack", b"%d" % n)


async def test_concurrent_saves_share_transactions_and_all_survive_a_reopen(
    tmp_path: Path,
) -> None:
    db = tmp_path / "edge.sqlite3"
    store = await Store.open(db)
    entries = [_accepted(f"MTR{n}") for n in range(300)]
    before = store.transactions
    await asyncio.gather(*(store.save(entry, applies_version=True) for entry in entries))
    grouped = store.transactions - before
    await store.close()

    reopened = await Store.open(db)
    try:
        assert len(await reopened.unfinished()) == 300
        assert len(await reopened.last_versions()) == 300
    finally:
        await reopened.close()
    assert grouped < 300 / 4, f"{grouped} transactions for 300 saves: no group commit"


async def test_a_failing_operation_is_rolled_back_alone(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.sqlite3")
    writer.start()
    try:
        await writer.run(lambda db: db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"))

        results = await asyncio.gather(
            writer.run(lambda db: db.execute("INSERT INTO t (k) VALUES ('a')").rowcount),
            writer.run(lambda db: db.execute("INSERT INTO t (k) VALUES ('a')").rowcount),
            writer.run(lambda db: db.execute("INSERT INTO t (k) VALUES ('b')").rowcount),
            return_exceptions=True,
        )
        keys = await writer.run(lambda db: [row[0] for row in db.execute("SELECT k FROM t")])
    finally:
        await writer.close()

    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], StoreError)
    assert isinstance(results[1].__cause__, sqlite3.IntegrityError)
    assert sorted(keys) == ["a", "b"]


async def test_duplicate_lookup_sees_the_stored_outcome_and_version(store: Store) -> None:
    entry = _accepted(version=7)
    await store.save(entry, applies_version=True)
    done = entry.finished(InboxStatus.EXECUTED, at_ms=now_ms(), event_code=301)
    await store.save(done)

    found, last_version = await store.lookup(entry.command_id, "MTR1")
    assert found == done
    assert last_version == 7
    assert await store.unfinished() == []


async def test_an_outcome_is_never_replaced_by_a_refusal(store: Store) -> None:
    accepted = _accepted(version=2)
    executed = accepted.finished(InboxStatus.EXECUTED, at_ms=now_ms())
    assert await store.save(accepted, applies_version=True)
    assert await store.save(executed)
    refused = accepted.finished(InboxStatus.REJECTED, at_ms=now_ms(), reason="bad signature")

    assert not await store.save(refused, [_ack_message(1)])
    assert not await store.save(accepted, applies_version=True)  # nor re-accepted
    found, _ = await store.lookup(accepted.command_id, "MTR1")
    assert found == executed
    assert await store.outbound_count() == 0  # a refused save writes nothing at all


async def test_only_a_failed_entry_may_be_reopened(store: Store) -> None:
    accepted = _accepted()
    failed = accepted.finished(InboxStatus.FAILED, at_ms=now_ms(), reason="meter unreachable")
    await store.save(accepted)
    await store.save(failed)

    assert await store.save(failed.reopened())
    assert [entry.command_id for entry in await store.unfinished()] == [accepted.command_id]


async def test_boot_sequence_counts_starts(tmp_path: Path) -> None:
    seen = []
    for _ in range(3):
        store = await Store.open(tmp_path / "edge.sqlite3")
        seen.append(await store.next_boot_seq())
        await store.close()
    assert seen == [1, 2, 3]


async def test_new_roster_meter_starts_its_event_cursor_at_its_current_log(store: Store) -> None:
    def status(meter_id: str, last_seq: int) -> MeterStatus:
        return MeterStatus(
            meter_id=meter_id,
            control_state=ControlState.CONNECTED,
            output_state=True,
            control_mode=2,
            last_event_seq=last_seq,
        )

    await store.replace_roster([status("MTR1", 4)])
    await store.replace_roster([status("MTR1", 9), status("MTR2", 2)])

    assert sorted(await store.roster()) == ["MTR1", "MTR2"]
    assert await store.event_cursor("MTR1") == 4  # events 5..9 are still news
    assert await store.event_cursor("MTR2") == 2


class RecordingBroker:
    """Publisher whose PUBACKs the test gives (or refuses) by hand."""

    def __init__(self) -> None:
        self.pubacks: dict[bytes, asyncio.Future[None]] = {}
        self.order: list[bytes] = []
        self.refuse_to_queue = False
        self.refused = asyncio.Event()
        self._published = asyncio.Event()

    async def wait_published(self, count: int) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while len(self.order) < count:
                self._published.clear()
                await self._published.wait()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        if self.refuse_to_queue:
            self.refused.set()
            raise PublishError(topic, "queue full")
        puback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pubacks[payload] = puback
        self.order.append(payload)
        self._published.set()
        return puback


class DeletionSignallingStore(Store):
    """The real store, telling the test each time PUBACKed rows have been deleted."""

    deleted: asyncio.Event

    async def delete_outbound(self, row_ids: Sequence[int]) -> None:
        await super().delete_outbound(row_ids)
        self.deleted.set()


async def test_unacknowledged_rows_are_replayed_oldest_first_by_the_next_run(
    tmp_path: Path,
) -> None:
    db = tmp_path / "edge.sqlite3"
    first_run = await DeletionSignallingStore.open(db)
    first_run.deleted = asyncio.Event()
    await first_run.save(None, [_ack_message(n) for n in range(1, 4)])
    first = RecordingBroker()
    publisher = OutboundPublisher(first_run, first, window=10, metrics=GatewayMetrics())
    running = asyncio.create_task(publisher.run())
    await first.wait_published(3)
    first.pubacks[b"1"].set_result(None)
    async with asyncio.timeout(DEADLINE_S):
        await first_run.deleted.wait()
    running.cancel()
    await first_run.close()  # "crash": rows 2 and 3 never got their PUBACK

    store = await Store.open(db)
    second = RecordingBroker()
    publisher = OutboundPublisher(store, second, window=10, metrics=GatewayMetrics())
    running = asyncio.create_task(publisher.run())
    try:
        await second.wait_published(2)
        assert second.order == [b"2", b"3"]
        for puback in second.pubacks.values():
            puback.set_result(None)
        async with asyncio.timeout(DEADLINE_S):
            await publisher.drained()
        assert await store.outbound_count() == 0
    finally:
        running.cancel()
        await store.close()


async def test_window_bounds_what_is_handed_to_the_client(store: Store) -> None:
    await store.save(None, [_ack_message(n) for n in range(10)])
    broker = RecordingBroker()
    publisher = OutboundPublisher(store, broker, window=4, metrics=GatewayMetrics())
    running = asyncio.create_task(publisher.run())
    try:
        await broker.wait_published(4)
        assert len(broker.order) == 4  # the window is full: nothing more until PUBACKs
        for payload in list(broker.order):
            broker.pubacks[payload].set_result(None)
        await broker.wait_published(8)
        assert broker.order == [b"%d" % n for n in range(8)]
    finally:
        running.cancel()


async def test_broker_refusal_drops_the_row_and_is_counted(store: Store) -> None:
    await store.save(None, [_ack_message(1)])
    broker = RecordingBroker()
    metrics = GatewayMetrics()
    publisher = OutboundPublisher(store, broker, window=4, metrics=metrics)
    running = asyncio.create_task(publisher.run())
    try:
        await broker.wait_published(1)
        broker.pubacks[b"1"].set_exception(PublishError("t", "not authorized"))
        async with asyncio.timeout(DEADLINE_S):
            await publisher.drained()
        assert await store.outbound_count() == 0
        assert metrics.outbound_refused == 1
    finally:
        running.cancel()


async def test_a_publish_the_client_cannot_queue_is_retried(store: Store) -> None:
    await store.save(None, [_ack_message(1)])
    broker = RecordingBroker()
    broker.refuse_to_queue = True
    publisher = OutboundPublisher(store, broker, window=4, metrics=GatewayMetrics())
    running = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(DEADLINE_S):
            await broker.refused.wait()
        broker.refuse_to_queue = False
        await broker.wait_published(1)
        assert broker.order == [b"1"]
    finally:
        running.cancel()


async def test_an_older_gateways_inbox_gains_the_read_back_order_columns(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        """CREATE TABLE inbox (
            command_id TEXT PRIMARY KEY, meter_id TEXT NOT NULL, version INTEGER NOT NULL,
            action TEXT, status TEXT NOT NULL, relay TEXT, event_code INTEGER,
            reason TEXT NOT NULL DEFAULT '', expires_at_ms INTEGER NOT NULL,
            received_at_ms INTEGER NOT NULL, done_at_ms INTEGER)"""
    )
    old.execute(
        "INSERT INTO inbox VALUES ('c-old', 'MTR1', 1, 'disconnect', 'executed', 'disconnected',"
        " 301, '', 9, 1, 2)"
    )
    old.commit()
    old.close()

    store = await Store.open(path)
    try:
        kept, _ = await store.lookup("c-old", "MTR1")
        assert kept is not None and (kept.relay, kept.event_seq, kept.read_ms) == (
            RelayState.DISCONNECTED,
            None,
            None,
        )
        entry = _accepted()
        await store.save(entry)
        done = entry.finished(
            InboxStatus.EXECUTED, at_ms=5, relay=RelayState.DISCONNECTED, event_seq=7, read_ms=4
        )
        assert await store.save(done)
        stored, _ = await store.lookup(entry.command_id, entry.meter_id)
    finally:
        await store.close()
    assert stored == done
    reopened = await Store.open(path)  # the columns are there now: opening again changes nothing
    await reopened.close()


async def test_a_row_no_subscriber_took_is_kept_and_sent_again(store: Store) -> None:
    await store.save(None, [_ack_message(n) for n in range(1, 4)])
    broker = RecordingBroker()
    metrics = GatewayMetrics()
    publisher = OutboundPublisher(store, broker, window=10, metrics=metrics)
    running = asyncio.create_task(publisher.run())
    try:
        await broker.wait_published(3)
        # The broker took row 2 but no subscription matched it (the cloud was not subscribed).
        broker.pubacks[b"2"].set_exception(NotDelivered("t"))
        broker.pubacks[b"1"].set_result(None)
        broker.pubacks[b"3"].set_result(None)
        await broker.wait_published(4)
        assert broker.order == [b"1", b"2", b"3", b"2"]  # only row 2 goes again
        assert await store.outbound_count() == 1
        broker.pubacks[b"2"].set_result(None)
        async with asyncio.timeout(DEADLINE_S):
            await publisher.drained()
        assert await store.outbound_count() == 0
        assert (metrics.outbound_undelivered, metrics.outbound_published) == (1, 3)
    finally:
        running.cancel()
