"""Fleet files, generated demo fleets, the live fleet by DCU, and the simulator's settings."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.errors import FleetFileError
from firmware_sim.fleet import Fleet, FleetSpec, generate_fleet, load_fleet_file, write_fleet_file
from firmware_sim.settings import SimSettings
from wire.clock import datetime_to_ms
from wire.messages import RelayState
from wire.meterlink import ControlState

NOW_MS = datetime_to_ms(datetime(2026, 1, 5, tzinfo=UTC))


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_fleet_file_fills_in_defaults(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "fleet.json",
        {
            "meters": [
                {"meter_id": "M1", "dcu_id": "D1"},
                {
                    "meter_id": "M2",
                    "dcu_id": "D1",
                    "control_mode": 1,
                    "relay": "ready_for_reconnection",
                    "installed_on": "2021-04-17",
                },
            ]
        },
    )
    spec = load_fleet_file(path)
    first, second = spec.meters
    assert (first.control_mode, first.relay, first.installed_on) == (2, RelayState.CONNECTED, None)
    assert (second.control_mode, second.relay, second.installed_on) == (
        1,
        RelayState.READY_FOR_RECONNECTION,
        date(2021, 4, 17),
    )

    fleet = Fleet.from_spec(spec, ManualClock(NOW_MS), seed=1)
    meter = fleet.get("M2")
    assert meter is not None
    assert meter.control_state is ControlState.READY_FOR_RECONNECTION
    assert meter.reading().import_wh > 0  # years of service, not a factory-fresh register


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"meters": [{"meter_id": "M1", "dcu_id": "D1", "control_mode": 9}]}, "control_mode"),
        ({"meters": [{"meter_id": "M1", "dcu_id": "D1", "relay": "open"}]}, "relay"),
        ({"meters": [{"meter_id": "M 1", "dcu_id": "D1"}]}, "meter_id"),
        ({"meters": [{"meter_id": "M1", "dcu_id": "D1", "mode": 1}]}, "mode"),
        ({"meters": [{"meter_id": "M1"}]}, "dcu_id"),
        ({"meters": []}, "meters"),
        (
            {
                "meters": [
                    {"meter_id": "M1", "dcu_id": "D1", "control_mode": 0, "relay": "disconnected"}
                ]
            },
            "control_mode 0",
        ),
        (
            {"meters": [{"meter_id": "M1", "dcu_id": "D1"}, {"meter_id": "M1", "dcu_id": "D2"}]},
            "M1",
        ),
    ],
)
def test_bad_fleet_file_says_what_is_wrong(
    tmp_path: Path, document: object, complaint: str
) -> None:
    path = write_json(tmp_path / "fleet.json", document)
    with pytest.raises(FleetFileError) as caught:
        load_fleet_file(path)
    assert caught.value.path == path
    assert complaint in caught.value.reason


def test_unreadable_fleet_file_is_a_fleet_file_error(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="No such file"):
        load_fleet_file(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(FleetFileError, match=r"garbage\.json"):
        load_fleet_file(garbage)


def test_generated_fleet_spreads_evenly_and_is_repeatable(tmp_path: Path) -> None:
    spec = generate_fleet(1000, 3, seed=42)
    assert spec == generate_fleet(1000, 3, seed=42)
    assert spec != generate_fleet(1000, 3, seed=43)
    assert spec.meters[0].meter_id == "MTR000001"
    assert spec.meters[-1].meter_id == "MTR001000"
    per_dcu = Counter(m.dcu_id for m in spec.meters)
    assert sorted(per_dcu) == ["DCU01", "DCU02", "DCU03"]
    assert max(per_dcu.values()) - min(per_dcu.values()) <= 1
    modes = Counter(m.control_mode for m in spec.meters)
    assert modes[2] > 700
    assert len(modes) >= 4  # the other modes are there to be exercised
    installed = [m.installed_on for m in spec.meters if m.installed_on is not None]
    assert len(installed) == 1000
    in_cohort = sum(date(2020, 1, 1) <= day <= date(2024, 12, 31) for day in installed)
    assert 700 < in_cohort < 1000

    path = tmp_path / "fleet.json"
    write_fleet_file(spec, path)
    assert load_fleet_file(path) == spec


def test_generated_fleet_can_start_partly_disconnected() -> None:
    spec = generate_fleet(500, 2, seed=1, disconnected_share=0.2)
    disconnected = [m for m in spec.meters if m.relay is RelayState.DISCONNECTED]
    assert 50 < len(disconnected) < 150
    assert all(m.control_mode != 0 for m in disconnected)


@pytest.mark.parametrize(("meters", "gateways"), [(0, 1), (5, 0), (5, 6)])
def test_generate_fleet_refuses_impossible_sizes(meters: int, gateways: int) -> None:
    with pytest.raises(ValueError, match="gateways"):
        generate_fleet(meters, gateways, seed=1)


def test_live_fleet_finds_meters_by_dcu() -> None:
    fleet = Fleet.from_spec(generate_fleet(10, 2, seed=1), ManualClock(NOW_MS), seed=1)
    assert len(fleet) == 10
    assert fleet.dcu_ids == ["DCU01", "DCU02"]
    assert sorted(fleet.on_dcu("DCU01")) == [f"MTR{i:06d}" for i in range(1, 6)]
    assert fleet.on_dcu("DCU99") == {}
    assert fleet.get("MTR000010") is not None
    assert fleet.get("MTR000011") is None


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_SIM_LINK_PORT", "7171")
    monkeypatch.setenv("SWITCHYARD_SIM_LOSS", "0.25")
    monkeypatch.setenv("SWITCHYARD_SIM_UNREACHABLE", "MTR000001, MTR000002")
    monkeypatch.setenv("SWITCHYARD_SIM_TIME_SCALE", "1440")
    settings = SimSettings()
    assert settings.link_port == 7171
    assert settings.loss == 0.25
    assert settings.unreachable == ["MTR000001", "MTR000002"]
    assert settings.time_scale == 1440.0
    assert settings.link_host == "127.0.0.1"
    assert settings.fleet_file is None

    monkeypatch.setenv("SWITCHYARD_SIM_UNREACHABLE", '["MTR000003"]')
    assert SimSettings().unreachable == ["MTR000003"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOSS", "1.5"), ("LATENCY_MS", "-1"), ("UNREACHABLE", "bad id"), ("TIME_SCALE", "0")],
)
def test_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"SWITCHYARD_SIM_{name}", value)
    with pytest.raises(ValueError, match=name.lower()):
        SimSettings()


def test_fleet_spec_round_trips_through_json() -> None:
    spec = generate_fleet(3, 1, seed=5)
    assert FleetSpec.model_validate_json(spec.model_dump_json()) == spec
