"""Daily household demand, rooftop solar and supply voltage curves, deterministic per meter."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Indian Standard Time; the daily curve follows the consumer's clock, not UTC.
IST_OFFSET_S = 5 * 3600 + 30 * 60
NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0

_TWO_PI = 2.0 * math.pi
_DAY_H = 24.0
# Short-term wobble periods stay well above the meter's 5-minute integration step.
_WOBBLE_SLOW_S = 131 * 60.0
_WOBBLE_FAST_S = 47 * 60.0
_EVENING_FEEDER_PEAK_H = 20.5
_MORNING_WIDTH_H = 1.2
_EVENING_WIDTH_H = 1.8
_ROOT_TWO_PI = math.sqrt(_TWO_PI)


def hour_of_day(at_ms: int) -> float:
    """Local (IST) time of day in fractional hours, 0 <= h < 24."""
    return ((at_ms / 1000.0 + IST_OFFSET_S) % 86_400.0) / 3600.0


def _bump(hour: float, centre_h: float, width_h: float) -> float:
    """A Gaussian bump over the day that wraps around midnight; 1.0 at its centre."""
    distance_h = abs(hour - centre_h)
    distance_h = min(distance_h, _DAY_H - distance_h)
    return math.exp(-0.5 * (distance_h / width_h) ** 2)


def grid_frequency_hz(at_ms: int) -> float:
    """System frequency, the same for every meter at one instant (a few tens of mHz off 50)."""
    at_s = at_ms / 1000.0
    return (
        NOMINAL_FREQUENCY_HZ
        + 0.04 * math.sin(_TWO_PI * at_s / 420.0)
        + 0.015 * math.sin(_TWO_PI * at_s / 83.0)
    )


@dataclass(frozen=True, slots=True)
class LoadCurve:
    """One household: its demand over the day, its rooftop solar, where it sits on the feeder."""

    base_w: float
    morning_peak_w: float
    morning_peak_h: float
    evening_peak_w: float
    evening_peak_h: float
    solar_peak_w: float
    power_factor: float
    voltage_offset_v: float
    phase_rad: float

    @classmethod
    def for_meter(cls, meter_id: str, seed: int) -> LoadCurve:
        """The curve of one meter: the same meter id and seed always give the same household."""
        rng = random.Random(f"{seed}/{meter_id}")
        has_solar = rng.random() < 0.12
        return cls(
            base_w=rng.uniform(80.0, 250.0),
            morning_peak_w=rng.uniform(300.0, 900.0),
            morning_peak_h=rng.uniform(6.5, 8.5),
            evening_peak_w=rng.uniform(600.0, 1800.0),
            evening_peak_h=rng.uniform(19.0, 21.5),
            solar_peak_w=rng.uniform(1000.0, 3000.0) if has_solar else 0.0,
            power_factor=rng.uniform(0.86, 0.97),
            # Near the transformer the voltage runs high, at the feeder's tail it sags.
            voltage_offset_v=rng.uniform(-7.0, 5.0),
            phase_rad=rng.uniform(0.0, _TWO_PI),
        )

    def demand_w(self, at_ms: int) -> float:
        """What the household draws at this instant, before any solar."""
        hour = hour_of_day(at_ms)
        at_s = at_ms / 1000.0
        shape = (
            self.base_w
            + self.morning_peak_w * _bump(hour, self.morning_peak_h, _MORNING_WIDTH_H)
            + self.evening_peak_w * _bump(hour, self.evening_peak_h, _EVENING_WIDTH_H)
        )
        wobble = (
            1.0
            + 0.10 * math.sin(_TWO_PI * at_s / _WOBBLE_SLOW_S + self.phase_rad)
            + 0.05 * math.sin(_TWO_PI * at_s / _WOBBLE_FAST_S + 2.0 * self.phase_rad)
        )
        return shape * wobble

    def solar_w(self, at_ms: int) -> float:
        """Rooftop generation at this instant: a clear-sky arc from 06:00 to 18:30."""
        if self.solar_peak_w == 0.0:
            return 0.0
        hour = hour_of_day(at_ms)
        if not 6.0 < hour < 18.5:
            return 0.0
        return self.solar_peak_w * math.pow(math.sin(math.pi * (hour - 6.0) / 12.5), 1.5)

    def net_power_w(self, at_ms: int) -> float:
        """Active power at the meter with the switch closed: positive imports, negative exports."""
        return self.demand_w(at_ms) - self.solar_w(at_ms)

    def voltage_v(self, at_ms: int) -> float:
        """Supply voltage at this meter: sags when the whole feeder peaks in the evening."""
        hour = hour_of_day(at_ms)
        at_s = at_ms / 1000.0
        feeder_sag_v = 8.0 * _bump(hour, _EVENING_FEEDER_PEAK_H, 2.5)
        ripple_v = 1.5 * math.sin(_TWO_PI * at_s / _WOBBLE_FAST_S + self.phase_rad)
        return NOMINAL_VOLTAGE_V + self.voltage_offset_v - feeder_sag_v + ripple_v

    def typical_day_import_wh(self) -> float:
        """Roughly a day's import: the area under the base load and the two peaks."""
        return (
            _ROOT_TWO_PI
            * (self.morning_peak_w * _MORNING_WIDTH_H + self.evening_peak_w * _EVENING_WIDTH_H)
            + 24.0 * self.base_w
        )

    def typical_day_export_wh(self) -> float:
        """Roughly a day's export: the part of the solar arc the house does not use itself."""
        return 2.0 * self.solar_peak_w
