"""The meters' non-volatile memory: what a restarted simulator finds again."""

from __future__ import annotations

from pathlib import Path

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import Fleet, generate_fleet
from firmware_sim.store import STORE_FILE, MeterStore, read_meters
from wire.meterlink import ControlState

START_MS = 1_780_000_000_000


def _fleet(clock: ManualClock) -> Fleet:
    return Fleet.from_spec(generate_fleet(3, 1, seed=4, mode_weights={2: 1.0}), clock, seed=4)


def test_relay_operations_are_durable_as_they_happen(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    fleet = _fleet(clock)
    store = MeterStore.open(tmp_path / STORE_FILE)
    store.checkpoint(fleet, clock.now_ms())
    meter = fleet.get("MTR000001")
    assert meter is not None
    meter.journal = store
    clock.advance(60_000)
    meter.remote_disconnect()
    meter.remote_disconnect()  # refused: already disconnected

    # No checkpoint since: the operations alone were written through.
    saved = MeterStore.open(tmp_path / STORE_FILE).load()["MTR000001"]
    assert saved.snapshot.control_state is ControlState.DISCONNECTED
    assert saved.snapshot.counters.transitions_applied == 1
    assert saved.snapshot.counters.transitions_refused == 1
    assert [event.seq for event in saved.events] == [1]
    assert read_meters(tmp_path / STORE_FILE)["MTR000001"].counters.transitions_applied == 1
    assert read_meters(tmp_path / STORE_FILE)["MTR000002"].counters.transitions_applied == 0


def test_a_restored_meter_continues_its_state_events_and_registers(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    fleet = _fleet(clock)
    store = MeterStore.open(tmp_path / STORE_FILE)
    for meter in fleet:
        meter.journal = store
    before = fleet.get("MTR000002")
    assert before is not None
    before.remote_disconnect()
    before.remote_reconnect()
    clock.advance(3_600_000)
    before.remote_disconnect()
    store.checkpoint(fleet, clock.now_ms())
    registers = before.reading().import_wh
    store.close()

    # A new simulator: meters built from the fleet file, then given what the store kept.
    reopened = MeterStore.open(tmp_path / STORE_FILE)
    assert reopened.meter_time_ms() == clock.now_ms()
    after = _fleet(clock).get("MTR000002")
    assert after is not None
    kept = reopened.load()["MTR000002"]
    after.restore(kept.snapshot, kept.events)
    assert after.control_state is ControlState.DISCONNECTED
    assert after.counters.transitions_applied == 3
    assert after.last_event_seq == 3
    assert [e.seq for e in after.events_since(1)] == [1, 2, 3]
    assert after.reading().import_wh == registers
    after.journal = reopened
    after.remote_reconnect()
    assert reopened.load()["MTR000002"].snapshot.last_event_seq == 4
