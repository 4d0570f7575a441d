"""SimMeter: relay events, consumption only with the switch closed, energy integrated over time."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from firmware_sim.clock import ManualClock, ScaledClock
from firmware_sim.load_curve import LoadCurve, hour_of_day
from firmware_sim.meter import SimMeter
from firmware_sim.metrology import BLOCK_MS
from wire.clock import datetime_to_ms
from wire.messages import EventCode, RelayState
from wire.meterlink import ControlState

IST = timezone(timedelta(hours=5, minutes=30))
MIDNIGHT_IST_MS = datetime_to_ms(datetime(2026, 1, 5, tzinfo=IST))
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS

HOUSEHOLD = LoadCurve(
    base_w=200.0,
    morning_peak_w=600.0,
    morning_peak_h=7.5,
    evening_peak_w=1200.0,
    evening_peak_h=20.0,
    solar_peak_w=0.0,
    power_factor=0.9,
    voltage_offset_v=-2.0,
    phase_rad=0.7,
)


def make_meter(
    clock: ManualClock, *, control_mode: int = 2, curve: LoadCurve = HOUSEHOLD
) -> SimMeter:
    return SimMeter("MTR000001", "DCU01", clock, curve, control_mode=control_mode)


def event_codes(meter: SimMeter) -> list[int]:
    return [event.code for event in meter.events_since(0)]


def reference_import_wh(curve: LoadCurve, start_ms: int, end_ms: int) -> float:
    """The energy under the curve by a fine trapezoid rule, independent of the meter's stepping."""
    step_ms = 10_000
    total_wh = 0.0
    for at_ms in range(start_ms, end_ms, step_ms):
        watts = (curve.net_power_w(at_ms) + curve.net_power_w(at_ms + step_ms)) / 2
        total_wh += max(watts, 0.0) * step_ms / HOUR_MS
    return total_wh


def test_switch_events_only_when_output_state_changes() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS)
    meter = make_meter(clock, control_mode=1)

    meter.remote_disconnect()
    clock.advance(MINUTE_MS)
    assert not meter.remote_disconnect().applied  # already open: no second 301
    meter.remote_reconnect()  # mode 1: armed only, output still off, so no 302 yet
    assert meter.control_state is ControlState.READY_FOR_RECONNECTION
    assert event_codes(meter) == [EventCode.LOAD_SWITCH_DISCONNECTED]

    clock.advance(MINUTE_MS)
    meter.press_button()
    events = meter.events_since(0)
    assert [e.code for e in events] == [301, 302]
    assert [e.seq for e in events] == [1, 2]
    assert [e.control_state for e in events] == [ControlState.DISCONNECTED, ControlState.CONNECTED]
    assert [e.at_ms for e in events] == [MIDNIGHT_IST_MS, MIDNIGHT_IST_MS + 2 * MINUTE_MS]
    assert meter.status.last_event_seq == 2
    assert [e.seq for e in meter.events_since(2)] == [2]


def test_ready_to_disconnected_changes_state_but_logs_nothing() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS)
    meter = make_meter(clock, control_mode=1)
    meter.remote_disconnect()
    meter.remote_reconnect()
    outcome = meter.remote_disconnect()  # transition c: output stays off
    assert outcome.transition is not None and outcome.transition.letter == "c"
    assert meter.control_state is ControlState.DISCONNECTED
    assert event_codes(meter) == [301]
    assert meter.counters.transitions_applied == 3


def test_status_follows_the_relay() -> None:
    meter = make_meter(ManualClock(MIDNIGHT_IST_MS))
    assert meter.status.relay is RelayState.CONNECTED
    meter.remote_disconnect()
    status = meter.status
    assert (status.relay, status.output_state, status.control_mode) == (
        RelayState.DISCONNECTED,
        False,
        2,
    )


def test_open_relay_consumes_nothing() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS + 18 * HOUR_MS)
    meter = make_meter(clock)
    meter.remote_disconnect()
    before = meter.reading()

    clock.advance(4 * HOUR_MS)  # across the evening peak
    after = meter.reading()

    assert after.relay is RelayState.DISCONNECTED
    assert (after.current_a, after.active_power_w) == (0.0, 0.0)
    assert after.import_wh == before.import_wh
    assert after.import_vah == before.import_vah
    assert 200.0 < after.voltage_v < 250.0  # the supply side is still live


def test_energy_integrates_elapsed_time_not_calls() -> None:
    start_ms = MIDNIGHT_IST_MS + 5 * HOUR_MS
    end_ms = start_ms + 6 * HOUR_MS
    read_once_clock = ManualClock(start_ms)
    read_often_clock = ManualClock(start_ms)
    read_once = make_meter(read_once_clock)
    read_often = make_meter(read_often_clock)

    while read_often_clock.now_ms() < end_ms:
        read_often_clock.advance(min(7 * MINUTE_MS, end_ms - read_often_clock.now_ms()))
        read_often.reading()
        read_often.reading()  # a second read at the same instant adds nothing
    read_once_clock.advance(end_ms - start_ms)

    once_wh = read_once.reading().import_wh
    often_wh = read_often.reading().import_wh
    expected_wh = reference_import_wh(HOUSEHOLD, start_ms, end_ms)
    assert once_wh == pytest.approx(expected_wh, rel=0.01)
    assert often_wh == pytest.approx(expected_wh, rel=0.01)
    assert once_wh > 2000  # six hours over the morning peak: kWh, not a handful of Wh


def test_reading_reports_live_quantities() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS + 20 * HOUR_MS)
    reading = make_meter(clock).reading()
    assert reading.at_ms == clock.now_ms()
    assert 207.0 <= reading.voltage_v <= 253.0
    assert 49.9 <= reading.frequency_hz <= 50.1
    assert reading.power_factor == pytest.approx(0.9)
    assert reading.active_power_w > 1000.0  # evening peak
    expected_current_a = reading.active_power_w / (reading.voltage_v * reading.power_factor)
    assert reading.current_a == pytest.approx(expected_current_a, rel=0.01)


def test_load_profile_blocks_add_up_to_the_register() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS + 19 * HOUR_MS)
    meter = make_meter(clock)
    start_wh = meter.reading().import_wh

    clock.advance(HOUR_MS)
    meter.remote_disconnect()
    clock.advance(HOUR_MS)
    end_wh = meter.reading().import_wh
    blocks = meter.profile_since(0)

    assert [b.block_start_ms - blocks[0].block_start_ms for b in blocks] == [
        i * BLOCK_MS for i in range(8)
    ]
    assert sum(b.import_wh for b in blocks) == end_wh - start_wh
    supplied, cut_off = blocks[:4], blocks[4:]
    assert all(b.import_wh > 100 and b.avg_current_a > 1.0 for b in supplied)
    assert all(b.import_wh == 0 and b.avg_current_a == 0.0 for b in cut_off)
    assert all(210.0 < b.avg_voltage_v < 245.0 for b in blocks)
    assert meter.profile_since(blocks[6].block_start_ms) == blocks[6:]


def test_rooftop_solar_exports_at_noon_only_while_connected() -> None:
    solar_house = dataclasses.replace(HOUSEHOLD, solar_peak_w=3000.0)
    clock = ManualClock(MIDNIGHT_IST_MS + 11 * HOUR_MS)
    meter = make_meter(clock, curve=solar_house)
    start = meter.reading()
    clock.advance(2 * HOUR_MS)
    midday = meter.reading()
    assert midday.export_wh - start.export_wh > 2000
    assert midday.active_power_w < 0
    meter.remote_disconnect()
    clock.advance(HOUR_MS)
    assert meter.reading().export_wh == midday.export_wh


def test_power_failure_stops_consumption_and_is_logged() -> None:
    clock = ManualClock(MIDNIGHT_IST_MS + 20 * HOUR_MS)
    meter = make_meter(clock)
    before_wh = meter.reading().import_wh
    meter.supply_lost()
    clock.advance(HOUR_MS)
    dark = meter.reading()
    meter.supply_restored()

    assert (dark.voltage_v, dark.current_a, dark.import_wh) == (0.0, 0.0, before_wh)
    assert dark.relay is RelayState.CONNECTED  # the switch did not move
    assert event_codes(meter) == [EventCode.POWER_FAIL, EventCode.POWER_RESTORE]
    assert meter.counters.power_failures == 1


@pytest.mark.parametrize(("mode", "recloses"), [(5, True), (2, False)])
def test_load_limit_trip_and_local_reconnect(mode: int, recloses: bool) -> None:
    meter = make_meter(ManualClock(MIDNIGHT_IST_MS), control_mode=mode)
    assert meter.trip_load_limit().applied
    assert meter.control_state is ControlState.READY_FOR_RECONNECTION
    assert meter.clear_load_limit().applied is recloses
    expected = [EventCode.OVERLOAD_TRIP, EventCode.LOAD_SWITCH_DISCONNECTED]
    if recloses:
        expected.append(EventCode.LOAD_SWITCH_CONNECTED)
    assert event_codes(meter) == expected
    assert meter.counters.load_limit_trips == 1


def test_scaled_clock_runs_a_day_in_minutes() -> None:
    monotonic_ns = [0]
    clock = ScaledClock(1440.0, origin_ms=MIDNIGHT_IST_MS, monotonic_ns=lambda: monotonic_ns[0])
    monotonic_ns[0] = 60 * 1_000_000_000  # one wall minute
    assert clock.now_ms() == MIDNIGHT_IST_MS + 24 * HOUR_MS


def test_load_curve_is_deterministic_per_meter_and_follows_the_day() -> None:
    assert LoadCurve.for_meter("MTR000001", 7) == LoadCurve.for_meter("MTR000001", 7)
    assert LoadCurve.for_meter("MTR000001", 7) != LoadCurve.for_meter("MTR000002", 7)
    assert LoadCurve.for_meter("MTR000001", 7) != LoadCurve.for_meter("MTR000001", 8)
    for index in range(50):
        curve = LoadCurve.for_meter(f"MTR{index:06d}", 1)
        evening_ms = MIDNIGHT_IST_MS + int(curve.evening_peak_h * HOUR_MS)
        night_ms = MIDNIGHT_IST_MS + 3 * HOUR_MS
        assert hour_of_day(night_ms) == pytest.approx(3.0)
        assert curve.demand_w(evening_ms) > 2 * curve.demand_w(night_ms)
