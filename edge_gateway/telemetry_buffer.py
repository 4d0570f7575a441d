"""The gateway's telemetry backlog in SQLite: bounded by count, bytes and age; drops counted."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_gateway.store import Store
from wire.clock import now_ms

_DROPPED_BATCHES = "telemetry_dropped_batches"
_DROPPED_ENTRIES = "telemetry_dropped_entries"
# Readings ever put into a batch, committed with the batch: what a soak expects the cloud to hold.
_READINGS_BATCHED = "telemetry_readings_batched"

# Given the running total of dropped entries, the payload of the batch to store.
PayloadBuilder = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class BacklogBounds:
    """How much unsent telemetry the gateway keeps: the oldest beyond any bound is dropped."""

    max_batches: int
    max_bytes: int
    max_age_s: float


@dataclass(frozen=True, slots=True)
class DropTotals:
    """What the backlog has dropped since the store was created."""

    batches: int = 0
    entries: int = 0


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One stored telemetry batch, by row id (oldest first)."""

    id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Appended:
    """A batch just stored, and what making room for it dropped."""

    row: StoredBatch
    totals: DropTotals
    dropped_now: DropTotals


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    created_ms: int
    entries: int
    size_bytes: int


class TelemetryBuffer:
    """Unsent telemetry batches and the profile cursors collected with them."""

    def __init__(
        self, store: Store, bounds: BacklogBounds, *, clock: Callable[[], int] = now_ms
    ) -> None:
        self._store = store
        self._bounds = bounds
        self._clock = clock

    async def totals(self) -> DropTotals:
        """What has been dropped so far."""
        return await self._store.run(_totals)

    async def append(
        self,
        build: PayloadBuilder,
        *,
        entries: int,
        profile_cursors: Mapping[str, int],
        keep: Collection[int] = (),
        readings: int = 0,
    ) -> Appended:
        """Make room by dropping the oldest beyond the bounds, then store the batch (built with
        the drop total including this drop) and its profile cursors."""
        # `keep`: rows the MQTT client already holds; they are never dropped (they may still be
        # delivered), but they count against the bounds. The new batch always stays.

        def operation(connection: sqlite3.Connection) -> Appended:
            before = _totals(connection)
            created_ms = self._clock()
            size_bytes = len(build(before.entries))  # the total's digits barely change it
            dropped_now = self._make_room(connection, created_ms, frozenset(keep), size_bytes)
            totals = DropTotals(
                before.batches + dropped_now.batches, before.entries + dropped_now.entries
            )
            if dropped_now.batches:
                _set_meta(connection, _DROPPED_BATCHES, totals.batches)
                _set_meta(connection, _DROPPED_ENTRIES, totals.entries)
            payload = build(totals.entries)
            cursor = connection.execute(
                "INSERT INTO telemetry (created_ms, entries, size_bytes, payload)"
                " VALUES (?, ?, ?, ?)",
                (created_ms, entries, len(payload), payload),
            )
            row_id = int(cursor.lastrowid or 0)
            if readings:
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                    (_READINGS_BATCHED, readings),
                )
            connection.executemany(
                "INSERT INTO profile_cursors (meter_id, next_block_ms) VALUES (?, ?)"
                " ON CONFLICT (meter_id) DO UPDATE SET next_block_ms = excluded.next_block_ms",
                list(profile_cursors.items()),
            )
            return Appended(StoredBatch(row_id, payload), totals, dropped_now)

        return await self._store.run(operation)

    async def oldest(self, limit: int, *, exclude: Collection[int] = ()) -> list[StoredBatch]:
        """The oldest stored batches, skipping `exclude` (those already handed to MQTT)."""
        skipped = sorted(exclude)

        def operation(connection: sqlite3.Connection) -> list[StoredBatch]:
            placeholders = ",".join("?" * len(skipped))
            rows = connection.execute(
                f"SELECT id, payload FROM telemetry WHERE id NOT IN ({placeholders})"  # noqa: S608
                " ORDER BY id LIMIT ?",
                (*skipped, limit),
            )
            return [StoredBatch(row_id, bytes(payload)) for row_id, payload in rows]

        return await self._store.run(operation)

    async def delete(self, row_ids: Sequence[int]) -> None:
        """Forget batches the broker has acknowledged."""

        def operation(connection: sqlite3.Connection) -> None:
            connection.executemany("DELETE FROM telemetry WHERE id = ?", [(i,) for i in row_ids])

        await self._store.run(operation)

    async def count(self) -> int:
        """How many batches wait for the broker."""

        def operation(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM telemetry").fetchone()[0])

        return await self._store.run(operation)

    async def profile_cursors(self) -> dict[str, int]:
        """Per meter, the start of the next load-profile block still to collect."""

        def operation(connection: sqlite3.Connection) -> dict[str, int]:
            rows = connection.execute("SELECT meter_id, next_block_ms FROM profile_cursors")
            return {meter_id: int(next_ms) for meter_id, next_ms in rows}

        return await self._store.run(operation)

    def _make_room(
        self,
        connection: sqlite3.Connection,
        now_ms_: int,
        keep: frozenset[int],
        incoming_bytes: int,
    ) -> DropTotals:
        """Drop every row past a bound, counting from the incoming batch back; answer what."""
        bounds = self._bounds
        oldest_allowed_ms = now_ms_ - int(bounds.max_age_s * 1000)
        rows = [
            _Row(*row)
            for row in connection.execute(
                "SELECT id, created_ms, entries, size_bytes FROM telemetry ORDER BY id DESC"
            )
        ]
        held = [row for row in rows if row.id in keep]
        kept_batches = 1 + len(held)
        kept_bytes = incoming_bytes + sum(row.size_bytes for row in held)
        full = False  # once a row does not fit, every older one goes too: oldest dropped first
        victims: list[_Row] = []
        for row in rows:
            if row.id in keep:
                continue
            full = full or not (
                kept_batches < bounds.max_batches
                and kept_bytes + row.size_bytes <= bounds.max_bytes
                and row.created_ms >= oldest_allowed_ms
            )
            if full:
                victims.append(row)
            else:
                kept_batches += 1
                kept_bytes += row.size_bytes
        if not victims:
            return DropTotals()
        connection.executemany("DELETE FROM telemetry WHERE id = ?", [(v.id,) for v in victims])
        return DropTotals(len(victims), sum(v.entries for v in victims))


def _totals(connection: sqlite3.Connection) -> DropTotals:
    values = dict(
        connection.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (_DROPPED_BATCHES, _DROPPED_ENTRIES)
        ).fetchall()
    )
    return DropTotals(int(values.get(_DROPPED_BATCHES, 0)), int(values.get(_DROPPED_ENTRIES, 0)))


def _set_meta(connection: sqlite3.Connection, key: str, value: int) -> None:
    connection.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


@dataclass(frozen=True, slots=True)
class BatchedTotals:
    """What a gateway's store says it ever batched and dropped (read by `switchyard soak`)."""

    readings: int
    dropped_entries: int
    unsent_batches: int


def read_batched_totals(path: Path) -> BatchedTotals:
    """Read a gateway's store file read-only; zeros before its first batch."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        values = dict(
            connection.execute(
                "SELECT key, value FROM meta WHERE key IN (?, ?)",
                (_READINGS_BATCHED, _DROPPED_ENTRIES),
            ).fetchall()
        )
        unsent = int(connection.execute("SELECT count(*) FROM telemetry").fetchone()[0])
    finally:
        connection.close()
    return BatchedTotals(
        int(values.get(_READINGS_BATCHED, 0)), int(values.get(_DROPPED_ENTRIES, 0)), unsent
    )
