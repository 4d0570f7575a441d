"""The gateway's durable state in SQLite: command inbox, applied versions, unsent messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Self, TypeVar

from edge_gateway.inbox import InboxEntry, InboxStatus
from edge_gateway.schema import ADDED_COLUMNS, INBOX_COLUMNS, SCHEMA, UPSERT_ENTRY
from edge_gateway.sqlite_writer import Operation, SqliteWriter
from wire import Action, RelayState
from wire.clock import now_ms
from wire.meterlink import MeterStatus

T = TypeVar("T")


class OutboundKind(StrEnum):
    """What an unsent message is; telemetry has a table of its own (see telemetry_buffer)."""

    ACK = "ack"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message to publish at QoS 1 once it is durably stored."""

    kind: OutboundKind
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """A stored outbound message, oldest first by id."""

    id: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class EventCursor:
    """The last event-log sequence number of one meter already published."""

    meter_id: str
    last_seq: int


class Store:
    """Typed operations on the gateway database; all of them run on the single writer thread."""

    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) the database at `path`."""
        writer = SqliteWriter(path)
        writer.start()
        store = cls(writer)
        try:
            await writer.run(_create_schema)
        except BaseException:
            await writer.close()
            raise
        return store

    @property
    def transactions(self) -> int:
        """Transactions committed so far (each may hold many operations)."""
        return self._writer.transactions

    async def close(self) -> None:
        """Commit what is queued and close the database."""
        await self._writer.close()

    async def run(self, operation: Operation[T]) -> T:
        """Run one operation of another module (e.g. the telemetry backlog) in a transaction."""
        return await self._writer.run(operation)

    async def next_boot_seq(self) -> int:
        """Count this start of the gateway and return its sequence number (1 for the first)."""
        return await self._writer.run(_next_boot_seq)

    async def lookup(self, command_id: str, meter_id: str) -> tuple[InboxEntry | None, int]:
        """The inbox entry of a command (if seen before) and the meter's last applied version."""

        def operation(connection: sqlite3.Connection) -> tuple[InboxEntry | None, int]:
            row = connection.execute(
                f"SELECT {INBOX_COLUMNS} FROM inbox WHERE command_id = ?",  # noqa: S608
                (command_id,),
            ).fetchone()
            return (_entry(row) if row else None), _last_version(connection, meter_id)

        return await self._writer.run(operation)

    async def save(
        self,
        entry: InboxEntry | None = None,
        outbound: Sequence[OutboundMessage] = (),
        *,
        applies_version: bool = False,
        event_cursor: EventCursor | None = None,
    ) -> bool:
        """Write an entry, its messages and cursors atomically; False means nothing was written."""
        # False: the entry's command already has an outcome this entry may not replace (see
        # UPSERT_ENTRY). `applies_version` makes the entry's version the meter's latest.

        def operation(connection: sqlite3.Connection) -> bool:
            if entry is not None:
                if not _upsert_entry(connection, entry):
                    return False
                if applies_version:
                    connection.execute(
                        "INSERT INTO meter_versions (meter_id, last_version) VALUES (?, ?) ON"
                        " CONFLICT (meter_id) DO UPDATE SET last_version = excluded.last_version",
                        (entry.meter_id, entry.version),
                    )
            if event_cursor is not None:
                connection.execute(
                    "INSERT INTO meter_events (meter_id, last_seq) VALUES (?, ?)"
                    " ON CONFLICT (meter_id) DO UPDATE SET last_seq = excluded.last_seq",
                    (event_cursor.meter_id, event_cursor.last_seq),
                )
            _insert_outbound(connection, outbound)
            return True

        return await self._writer.run(operation)

    async def unfinished(self) -> list[InboxEntry]:
        """Entries still `accepted`: commands a previous run verified but did not finish."""

        def operation(connection: sqlite3.Connection) -> list[InboxEntry]:
            rows = connection.execute(
                f"SELECT {INBOX_COLUMNS} FROM inbox WHERE status = 'accepted'"  # noqa: S608
                " ORDER BY received_at_ms, rowid"
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self._writer.run(operation)

    async def last_versions(self) -> dict[str, int]:
        """Every meter's last applied command version."""

        def operation(connection: sqlite3.Connection) -> dict[str, int]:
            rows = connection.execute("SELECT meter_id, last_version FROM meter_versions")
            return {meter_id: version for meter_id, version in rows}

        return await self._writer.run(operation)

    async def event_cursor(self, meter_id: str) -> int:
        """The last event sequence number of this meter already published (0 if none)."""

        def operation(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT last_seq FROM meter_events WHERE meter_id = ?", (meter_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._writer.run(operation)

    async def roster(self) -> list[str]:
        """Meter ids on this DCU's link as of the last successful hello."""

        def operation(connection: sqlite3.Connection) -> list[str]:
            return [row[0] for row in connection.execute("SELECT meter_id FROM roster")]

        return await self._writer.run(operation)

    async def replace_roster(self, meters: Sequence[MeterStatus]) -> None:
        """Record the roster a hello answered; a new meter's event history counts as seen."""

        def operation(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM roster")
            connection.executemany(
                "INSERT INTO roster (meter_id, control_mode) VALUES (?, ?)",
                [(meter.meter_id, meter.control_mode) for meter in meters],
            )
            # Publishing a meter's whole past log the first time we see it would flood the cloud
            # with stale events; only what happens from now on is news.
            connection.executemany(
                "INSERT OR IGNORE INTO meter_events (meter_id, last_seq) VALUES (?, ?)",
                [(meter.meter_id, meter.last_event_seq) for meter in meters],
            )

        await self._writer.run(operation)

    async def outbound_after(self, after_id: int, limit: int) -> list[OutboundRow]:
        """Unsent messages with id greater than `after_id`, oldest first."""

        def operation(connection: sqlite3.Connection) -> list[OutboundRow]:
            rows = connection.execute(
                "SELECT id, topic, payload FROM outbound WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            return [OutboundRow(row_id, topic, bytes(payload)) for row_id, topic, payload in rows]

        return await self._writer.run(operation)

    async def delete_outbound(self, row_ids: Sequence[int]) -> None:
        """Forget messages the broker has acknowledged."""

        def operation(connection: sqlite3.Connection) -> None:
            connection.executemany("DELETE FROM outbound WHERE id = ?", [(i,) for i in row_ids])

        await self._writer.run(operation)

    async def outbound_count(self) -> int:
        """How many messages still wait for the broker's PUBACK."""

        def operation(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM outbound").fetchone()[0])

        return await self._writer.run(operation)

    async def prune_inbox(self, done_before_ms: int) -> int:
        """Drop finished entries older than any redelivery could be; return how many."""

        def operation(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "DELETE FROM inbox WHERE status != 'accepted' AND done_at_ms < ?",
                (done_before_ms,),
            )
            return cursor.rowcount

        return await self._writer.run(operation)


def _create_schema(connection: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        connection.execute(statement)
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _next_boot_seq(connection: sqlite3.Connection) -> int:
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('boot_seq', 1)"
        " ON CONFLICT (key) DO UPDATE SET value = value + 1"
    )
    return int(connection.execute("SELECT value FROM meta WHERE key = 'boot_seq'").fetchone()[0])


def _last_version(connection: sqlite3.Connection, meter_id: str) -> int:
    row = connection.execute(
        "SELECT last_version FROM meter_versions WHERE meter_id = ?", (meter_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def _upsert_entry(connection: sqlite3.Connection, entry: InboxEntry) -> bool:
    cursor = connection.execute(
        UPSERT_ENTRY,
        (
            entry.command_id,
            entry.meter_id,
            entry.version,
            entry.action.value if entry.action else None,
            entry.status.value,
            entry.relay.value if entry.relay else None,
            entry.event_code,
            entry.reason,
            entry.expires_at_ms,
            entry.received_at_ms,
            entry.done_at_ms,
            entry.event_seq,
            entry.read_ms,
        ),
    )
    return cursor.rowcount == 1


def _insert_outbound(connection: sqlite3.Connection, messages: Sequence[OutboundMessage]) -> None:
    if not messages:
        return
    created_ms = now_ms()
    connection.executemany(
        "INSERT INTO outbound (kind, topic, payload, created_ms) VALUES (?, ?, ?, ?)",
        [(message.kind.value, message.topic, message.payload, created_ms) for message in messages],
    )


def _entry(row: sqlite3.Row) -> InboxEntry:
    return InboxEntry(
        command_id=row["command_id"],
        meter_id=row["meter_id"],
        version=row["version"],
        action=Action(row["action"]) if row["action"] else None,
        status=InboxStatus(row["status"]),
        expires_at_ms=row["expires_at_ms"],
        received_at_ms=row["received_at_ms"],
        relay=RelayState(row["relay"]) if row["relay"] else None,
        event_code=row["event_code"],
        reason=row["reason"],
        done_at_ms=row["done_at_ms"],
        event_seq=row["event_seq"],
        read_ms=row["read_ms"],
    )
