"""The simulated fleet: its JSON fleet file, a generator for demos, and the live meters by DCU.

Fleet file format (UTF-8 JSON)::

    {"meters": [
        {"meter_id": "MTR000001", "dcu_id": "DCU01", "control_mode": 2,
         "relay": "connected", "installed_on": "2021-04-17"},
        {"meter_id": "MTR000002", "dcu_id": "DCU01"}
    ]}

- `meter_id`, `dcu_id` (required): one topic level each (letters, digits, `_.-`); meter ids unique.
- `control_mode` (default 2): DLMS IC 70 mode 0..6; 2 reconnects remotely straight to connected.
- `relay` (default "connected"): the switch at start, "connected" | "disconnected" |
  "ready_for_reconnection"; a mode-0 meter has no disconnector and must be "connected".
- `installed_on` (optional, YYYY-MM-DD): sizes the registers' starting values; the cloud's
  cohort rule reads the same date.
Unknown keys are refused, so a typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from firmware_sim.clock import Clock
from firmware_sim.errors import FleetFileError
from firmware_sim.load_curve import LoadCurve
from firmware_sim.meter import SimMeter
from wire.clock import ms_to_datetime
from wire.ids import DcuId, MeterId
from wire.messages import RelayState
from wire.meterlink import ControlState

# Demo fleets: mostly mode 2 (remote reconnect straight to connected), a few of every other kind.
DEMO_MODE_WEIGHTS: Mapping[int, float] = MappingProxyType(
    {2: 0.80, 1: 0.08, 4: 0.04, 3: 0.03, 0: 0.02, 5: 0.02, 6: 0.01}
)
_COHORT_FIRST = date(2020, 1, 1)
_COHORT_LAST = date(2024, 12, 31)
_CONTROL_STATE_OF = {state.relay: state for state in ControlState}
_EMPTY: Mapping[str, SimMeter] = MappingProxyType({})


class MeterSpec(BaseModel):
    """One meter of the fleet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter_id: MeterId
    dcu_id: DcuId
    control_mode: Annotated[int, Field(ge=0, le=6)] = 2
    relay: RelayState = RelayState.CONNECTED
    installed_on: date | None = None

    @model_validator(mode="after")
    def _mode_zero_stays_connected(self) -> Self:
        if self.control_mode == 0 and self.relay is not RelayState.CONNECTED:
            raise ValueError("control_mode 0 has no disconnector, so relay must be 'connected'")
        return self


class FleetSpec(BaseModel):
    """A whole fleet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meters: Annotated[list[MeterSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _meter_ids_unique(self) -> Self:
        seen: set[str] = set()
        for spec in self.meters:
            if spec.meter_id in seen:
                raise ValueError(f"meter_id {spec.meter_id!r} appears more than once")
            seen.add(spec.meter_id)
        return self


def load_fleet_file(path: Path) -> FleetSpec:
    """Read and validate a fleet file; FleetFileError says what is wrong and where."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise FleetFileError(path, exc.strerror or str(exc)) from exc
    try:
        return FleetSpec.model_validate_json(text)
    except ValidationError as exc:
        raise FleetFileError(path, _describe(exc)) from exc


def write_fleet_file(spec: FleetSpec, path: Path) -> None:
    """Write a fleet file that `load_fleet_file` reads back unchanged."""
    path.write_text(spec.model_dump_json(indent=1, exclude_none=True) + "\n", encoding="utf-8")


def _describe(exc: ValidationError) -> str:
    """The first few validation errors as `where: what` lines."""
    lines = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "file"
        lines.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def generate_fleet(
    meters: int,
    gateways: int,
    seed: int,
    *,
    disconnected_share: float = 0.0,
    mode_weights: Mapping[int, float] = DEMO_MODE_WEIGHTS,
) -> FleetSpec:
    """A demo fleet: MTR000001.. spread evenly, in contiguous runs, over DCU01..; deterministic."""
    if meters < 1 or not 1 <= gateways <= meters:
        raise ValueError(f"need 1 <= gateways <= meters, got {meters} meters on {gateways}")
    if not 0.0 <= disconnected_share <= 1.0:
        raise ValueError(f"disconnected_share must be within 0..1, got {disconnected_share}")
    rng = random.Random(seed)
    meter_digits = max(6, len(str(meters)))
    dcu_digits = max(2, len(str(gateways)))
    modes = list(mode_weights)
    weights = list(mode_weights.values())
    specs = []
    for index in range(meters):
        control_mode = rng.choices(modes, weights)[0]
        disconnected = control_mode != 0 and rng.random() < disconnected_share
        specs.append(
            MeterSpec(
                meter_id=f"MTR{index + 1:0{meter_digits}d}",
                # Neighbours share a concentrator, as on a real feeder.
                dcu_id=f"DCU{index * gateways // meters + 1:0{dcu_digits}d}",
                control_mode=control_mode,
                relay=RelayState.DISCONNECTED if disconnected else RelayState.CONNECTED,
                installed_on=_demo_install_date(rng),
            )
        )
    return FleetSpec(meters=specs)


def _demo_install_date(rng: random.Random) -> date:
    """Mostly inside the 2020-2024 rollout cohort, some before and after it."""
    if rng.random() < 0.85:
        first, last = _COHORT_FIRST, _COHORT_LAST
    elif rng.random() < 0.5:
        first, last = date(2017, 1, 1), _COHORT_FIRST - timedelta(days=1)
    else:
        first, last = _COHORT_LAST + timedelta(days=1), date(2025, 6, 30)
    return first + timedelta(days=rng.randrange((last - first).days + 1))


class Fleet:
    """The live meters, found by id or by the DCU whose link they are on."""

    def __init__(self, meters: Iterable[SimMeter]) -> None:
        self._by_id: dict[str, SimMeter] = {}
        self._by_dcu: dict[str, dict[str, SimMeter]] = {}
        for meter in meters:
            if meter.meter_id in self._by_id:
                raise ValueError(f"meter {meter.meter_id} is in the fleet twice")
            self._by_id[meter.meter_id] = meter
            self._by_dcu.setdefault(meter.dcu_id, {})[meter.meter_id] = meter

    @classmethod
    def from_spec(cls, spec: FleetSpec, clock: Clock, *, seed: int) -> Fleet:
        """Build every meter of a fleet file; `seed` fixes each household's load curve."""
        today = ms_to_datetime(clock.now_ms()).date()
        return cls(_build_meter(meter_spec, clock, seed, today) for meter_spec in spec.meters)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[SimMeter]:
        return iter(self._by_id.values())

    @property
    def dcu_ids(self) -> list[str]:
        """Every DCU with at least one meter, sorted."""
        return sorted(self._by_dcu)

    def get(self, meter_id: str) -> SimMeter | None:
        """The meter with this id anywhere in the fleet."""
        return self._by_id.get(meter_id)

    def on_dcu(self, dcu_id: str) -> Mapping[str, SimMeter]:
        """The meters on one DCU's link by id; empty for a DCU the fleet does not have."""
        return self._by_dcu.get(dcu_id, _EMPTY)


def _build_meter(spec: MeterSpec, clock: Clock, seed: int, today: date) -> SimMeter:
    curve = LoadCurve.for_meter(spec.meter_id, seed)
    age_days = _age_days(spec, seed, today)
    return SimMeter(
        spec.meter_id,
        spec.dcu_id,
        clock,
        curve,
        control_mode=spec.control_mode,
        control_state=_CONTROL_STATE_OF[spec.relay],
        installed_on=spec.installed_on,
        # Registers start where years of service would have left them, not at zero.
        import_wh=age_days * curve.typical_day_import_wh(),
        export_wh=age_days * curve.typical_day_export_wh(),
    )


def _age_days(spec: MeterSpec, seed: int, today: date) -> int:
    if spec.installed_on is not None:
        return max((today - spec.installed_on).days, 0)
    return random.Random(f"{seed}/{spec.meter_id}/age").randrange(365, 5 * 365)
