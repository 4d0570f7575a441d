"""The meters' non-volatile memory: one SQLite file per simulator, written through one connection.

A relay operation and the events it logs are committed before the link answers it, so a
SIGKILL of the simulator loses nothing a gateway was told. Registers are checkpointed every few
seconds (a real meter saves them on power-down); the captured load profile is not kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from firmware_sim.meter import EVENT_CAPACITY, MeterCounters, MeterSnapshot, SimMeter
from wire.meterlink import ControlState, LinkEvent

STORE_FILE = "meters.sqlite3"
CHECKPOINT_EVERY_S = 5.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meters (
        meter_id TEXT PRIMARY KEY, control_state INTEGER NOT NULL, control_mode INTEGER NOT NULL,
        supplied INTEGER NOT NULL, last_event_seq INTEGER NOT NULL,
        transitions_applied INTEGER NOT NULL, transitions_refused INTEGER NOT NULL,
        power_failures INTEGER NOT NULL, load_limit_trips INTEGER NOT NULL,
        import_wh REAL NOT NULL, export_wh REAL NOT NULL, import_vah REAL NOT NULL,
        integrated_to_ms INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
        meter_id TEXT NOT NULL, seq INTEGER NOT NULL, code INTEGER NOT NULL,
        at_ms INTEGER NOT NULL, control_state INTEGER NOT NULL, detail TEXT NOT NULL,
        PRIMARY KEY (meter_id, seq))""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_COLUMNS = (
    "meter_id, control_state, control_mode, supplied, last_event_seq, transitions_applied,"
    " transitions_refused, power_failures, load_limit_trips, import_wh, export_wh, import_vah,"
    " integrated_to_ms"
)
_UPSERT_METER = (
    f"INSERT OR REPLACE INTO meters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
)
_INSERT_EVENT = "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)"
_PRUNE_EVENTS = """DELETE FROM events WHERE seq <= (
    SELECT m.last_event_seq FROM meters m WHERE m.meter_id = events.meter_id) - ?"""
_CLOCK_KEY = "meter_time_ms"


@dataclass(frozen=True, slots=True)
class Saved:
    """One meter as the store kept it."""

    snapshot: MeterSnapshot
    events: list[LinkEvent]


class MeterStore:
    """Durable meter state; every method runs on the simulator's event loop thread (one writer)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open (or create) the store file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a commit is in the OS once it returns, which is what
        # surviving a process kill needs; surviving power loss is the host's business.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            connection.execute(statement)
        return cls(connection)

    def close(self) -> None:
        """Close the file."""
        self._connection.close()

    def save(self, snapshot: MeterSnapshot, events: Sequence[LinkEvent]) -> None:
        """One meter's state and its new events, committed together."""
        with self._transaction() as connection:
            connection.execute(_UPSERT_METER, _meter_row(snapshot))
            connection.executemany(
                _INSERT_EVENT,
                [(snapshot.meter_id, *_event_row(event)) for event in events],
            )

    def checkpoint(self, meters: Iterable[SimMeter], meter_time_ms: int) -> None:
        """Every meter's registers and the meter time, in one transaction; old events go."""
        with self._transaction() as connection:
            connection.executemany(_UPSERT_METER, [_meter_row(m.snapshot()) for m in meters])
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (_CLOCK_KEY, meter_time_ms),
            )
            connection.execute(_PRUNE_EVENTS, (EVENT_CAPACITY,))

    def meter_time_ms(self) -> int:
        """The meter time of the last checkpoint, 0 before the first."""
        row = self._connection.execute(
            "SELECT value FROM meta WHERE key = ?", (_CLOCK_KEY,)
        ).fetchone()
        return int(row[0]) if row else 0

    def load(self) -> dict[str, Saved]:
        """Every meter the store holds, with its event log oldest first."""
        events: dict[str, list[LinkEvent]] = {}
        for meter_id, *event in self._connection.execute(
            "SELECT meter_id, seq, code, at_ms, control_state, detail FROM events"
            " ORDER BY meter_id, seq"
        ):
            events.setdefault(meter_id, []).append(_event(*event))
        return {
            snapshot.meter_id: Saved(snapshot, events.get(snapshot.meter_id, []))
            for snapshot in (
                _snapshot(row)
                for row in self._connection.execute(f"SELECT {_COLUMNS} FROM meters")  # noqa: S608
            )
        }

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connection)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._connection.execute("COMMIT" if exc_type is None else "ROLLBACK")


@dataclass(frozen=True, slots=True)
class MeterRecord:
    """A meter's switch and relay counters as last committed."""

    control_state: ControlState
    control_mode: int
    counters: MeterCounters


def read_meters(path: Path) -> dict[str, MeterRecord]:
    """Every meter's committed switch state and counters (read-only: for the soak and tests)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT meter_id, control_state, control_mode, transitions_applied,"
            " transitions_refused, power_failures, load_limit_trips FROM meters"
        ).fetchall()
    finally:
        connection.close()
    return {
        meter_id: MeterRecord(ControlState(state), mode, MeterCounters(*counts))
        for meter_id, state, mode, *counts in rows
    }


def _meter_row(s: MeterSnapshot) -> tuple[object, ...]:
    c = s.counters
    return (
        s.meter_id,
        int(s.control_state),
        s.control_mode,
        int(s.supplied),
        s.last_event_seq,
        c.transitions_applied,
        c.transitions_refused,
        c.power_failures,
        c.load_limit_trips,
        s.import_wh,
        s.export_wh,
        s.import_vah,
        s.integrated_to_ms,
    )


def _snapshot(row: Sequence[Any]) -> MeterSnapshot:
    meter_id, state, mode, supplied, seq, applied, refused, failures, trips, *registers = row
    import_wh, export_wh, import_vah, integrated_to_ms = registers
    return MeterSnapshot(
        meter_id=meter_id,
        control_state=ControlState(state),
        control_mode=mode,
        supplied=bool(supplied),
        last_event_seq=seq,
        counters=MeterCounters(applied, refused, failures, trips),
        import_wh=import_wh,
        export_wh=export_wh,
        import_vah=import_vah,
        integrated_to_ms=integrated_to_ms,
    )


def _event_row(event: LinkEvent) -> tuple[object, ...]:
    return (event.seq, event.code, event.at_ms, int(event.control_state), event.detail)


def _event(seq: int, code: int, at_ms: int, state: int, detail: str) -> LinkEvent:
    return LinkEvent(
        seq=seq, code=code, at_ms=at_ms, control_state=ControlState(state), detail=detail
    )
