"""A meter's measuring side: energy registers integrated over time, the 15-minute load profile."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import dropwhile

from firmware_sim.load_curve import LoadCurve, grid_frequency_hz
from wire.messages import PROFILE_BLOCK_MS, LoadProfileBlock

BLOCK_MS = PROFILE_BLOCK_MS
# Midpoint integration is exact enough at this step for curves that change over tens of minutes,
# and cheap enough that a fast-forwarded demo of thousands of meters stays light.
MAX_STEP_MS = 5 * 60 * 1000
PROFILE_CAPACITY_BLOCKS = 96  # one day of 15-minute blocks per meter
_MS_PER_HOUR = 3_600_000.0


@dataclass(frozen=True, slots=True)
class Instant:
    """Instantaneous quantities at one moment."""

    voltage_v: float
    current_a: float
    active_power_w: float
    power_factor: float
    frequency_hz: float


@dataclass(frozen=True, slots=True)
class _ClosedBlock:
    """A captured load-profile block, kept lighter than its wire model."""

    start_ms: int
    avg_voltage_v: float
    avg_current_a: float
    import_wh: int
    export_wh: int


@dataclass(slots=True)
class _OpenBlock:
    """The block being accumulated; averages cover only the time it has seen."""

    start_ms: int
    import_wh_at_start: int
    export_wh_at_start: int
    covered_ms: int = 0
    voltage_v_ms: float = 0.0
    current_a_ms: float = 0.0

    @property
    def end_ms(self) -> int:
        """Where this block closes."""
        return self.start_ms + BLOCK_MS


def block_start_ms(at_ms: int) -> int:
    """Start of the 15-minute block containing `at_ms` (IST is a whole number of blocks off UTC)."""
    return at_ms - at_ms % BLOCK_MS


class Metrology:
    """Energy registers and load profile of one meter, driven by its household's load curve."""

    def __init__(
        self,
        curve: LoadCurve,
        start_ms: int,
        *,
        import_wh: float = 0.0,
        export_wh: float = 0.0,
        import_vah: float = 0.0,
        profile_capacity_blocks: int = PROFILE_CAPACITY_BLOCKS,
    ) -> None:
        self.curve = curve
        self._import_wh = import_wh
        self._export_wh = export_wh
        self._import_vah = import_vah
        self._integrated_to_ms = start_ms
        self._block = self._open_block(start_ms)
        self._profile: deque[_ClosedBlock] = deque(maxlen=profile_capacity_blocks)

    @property
    def import_wh(self) -> int:
        """Cumulative active energy imported, whole Wh as the register shows it."""
        return int(self._import_wh)

    @property
    def export_wh(self) -> int:
        """Cumulative active energy exported (rooftop solar), whole Wh."""
        return int(self._export_wh)

    @property
    def import_vah(self) -> int:
        """Cumulative apparent energy while importing, whole VAh."""
        return int(self._import_vah)

    @property
    def exact_import_wh(self) -> float:
        """The import register with its fraction, for a checkpoint."""
        return self._import_wh

    @property
    def exact_export_wh(self) -> float:
        """The export register with its fraction, for a checkpoint."""
        return self._export_wh

    @property
    def exact_import_vah(self) -> float:
        """The apparent-energy register with its fraction, for a checkpoint."""
        return self._import_vah

    @property
    def integrated_to_ms(self) -> int:
        """Meter time the registers have been brought up to."""
        return self._integrated_to_ms

    def restore(
        self, import_wh: float, export_wh: float, import_vah: float, integrated_to_ms: int
    ) -> None:
        """Resume from a checkpoint; the open block starts again, the captured profile is lost."""
        self._import_wh, self._export_wh, self._import_vah = import_wh, export_wh, import_vah
        self._integrated_to_ms = integrated_to_ms
        self._block = self._open_block(integrated_to_ms)

    def advance(self, now_ms: int, *, supplied: bool, load_connected: bool) -> None:
        """Integrate from the last call to `now_ms`; supply and switch held steady all along."""
        at_ms = self._integrated_to_ms
        while at_ms < now_ms:
            step_end_ms = min(now_ms, at_ms + MAX_STEP_MS, self._block.end_ms)
            self._integrate(at_ms, step_end_ms, supplied=supplied, load_connected=load_connected)
            at_ms = step_end_ms
            if at_ms == self._block.end_ms:
                self._close_block()
        self._integrated_to_ms = max(at_ms, self._integrated_to_ms)

    def instant(self, at_ms: int, *, supplied: bool, load_connected: bool) -> Instant:
        """Voltage, current, power, power factor and frequency at `at_ms`."""
        if not supplied:
            return Instant(0.0, 0.0, 0.0, 0.0, 0.0)
        voltage_v = self.curve.voltage_v(at_ms)
        frequency_hz = grid_frequency_hz(at_ms)
        if not load_connected:
            # No load: meters show unity rather than a ratio of two zeros.
            return Instant(voltage_v, 0.0, 0.0, 1.0, frequency_hz)
        power_w = self.curve.net_power_w(at_ms)
        power_factor = self.curve.power_factor
        current_a = abs(power_w) / (voltage_v * power_factor)
        return Instant(voltage_v, current_a, power_w, power_factor, frequency_hz)

    def blocks_since(self, meter_id: str, since_ms: int) -> list[LoadProfileBlock]:
        """Captured blocks starting at or after `since_ms`, oldest first."""
        recent = dropwhile(lambda block: block.start_ms < since_ms, self._profile)
        return [
            LoadProfileBlock(
                meter_id=meter_id,
                block_start_ms=block.start_ms,
                avg_voltage_v=block.avg_voltage_v,
                avg_current_a=block.avg_current_a,
                import_wh=block.import_wh,
                export_wh=block.export_wh,
            )
            for block in recent
        ]

    def _integrate(
        self, start_ms: int, end_ms: int, *, supplied: bool, load_connected: bool
    ) -> None:
        """Add one step's energy, evaluated at its midpoint, to the registers and the block."""
        step_ms = end_ms - start_ms
        block = self._block
        block.covered_ms += step_ms
        if not supplied:
            return
        mid_ms = (start_ms + end_ms) // 2
        voltage_v = self.curve.voltage_v(mid_ms)
        block.voltage_v_ms += voltage_v * step_ms
        if not load_connected:
            return
        power_w = self.curve.net_power_w(mid_ms)
        power_factor = self.curve.power_factor
        energy_wh = power_w * step_ms / _MS_PER_HOUR
        if energy_wh >= 0.0:
            self._import_wh += energy_wh
            self._import_vah += energy_wh / power_factor
        else:
            self._export_wh -= energy_wh
        block.current_a_ms += abs(power_w) / (voltage_v * power_factor) * step_ms

    def _open_block(self, at_ms: int) -> _OpenBlock:
        return _OpenBlock(block_start_ms(at_ms), self.import_wh, self.export_wh)

    def _close_block(self) -> None:
        block = self._block
        covered_ms = block.covered_ms or 1
        self._profile.append(
            _ClosedBlock(
                start_ms=block.start_ms,
                avg_voltage_v=round(block.voltage_v_ms / covered_ms, 2),
                avg_current_a=round(block.current_a_ms / covered_ms, 3),
                # Register deltas, so the blocks of a day add up to exactly what the register grew.
                import_wh=self.import_wh - block.import_wh_at_start,
                export_wh=self.export_wh - block.export_wh_at_start,
            )
        )
        self._block = self._open_block(block.end_ms)
