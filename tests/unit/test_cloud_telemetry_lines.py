"""Every line the cloud writes follows the declared schema: measurement, tags, field types."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cloud.telemetry.lines import batch_lines, command_line, event_line, gateway_state_line
from cloud.telemetry.schema import MEASUREMENTS, FieldType
from wire import (
    GatewayState,
    LoadProfileBlock,
    MeterEvent,
    MeterReport,
    Reading,
    RelayState,
    TelemetryBatch,
)

_INTEGER = re.compile(r"^-?\d+i$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\d*\.\d+|\d+)(e[+-]?\d+)?$")
_BOOLEAN = {"true", "false"}


def _parse(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """Our lines need no escaping (ids are restricted), so a split is an exact parser."""
    series, fields, timestamp = line.split(" ")
    measurement, *tags = series.split(",")
    return (
        measurement,
        dict(tag.split("=", 1) for tag in tags),
        dict(field.split("=", 1) for field in fields.split(",")),
        int(timestamp),
    )


def _check(lines: bytes) -> list[tuple[str, dict[str, str], dict[str, str], int]]:
    parsed = []
    for line in lines.decode().splitlines():
        measurement, tags, fields, timestamp = _parse(line)
        declared = MEASUREMENTS[measurement]
        assert set(tags) == declared.tags, line
        assert set(fields) <= set(declared.fields), line
        for name, value in fields.items():
            kind = declared.fields[name]
            if kind is FieldType.INTEGER:
                assert _INTEGER.match(value), f"{name}={value} is not an integer"
            elif kind is FieldType.FLOAT:
                assert _FLOAT.match(value), f"{name}={value} is not a float"
            else:
                assert value in _BOOLEAN, f"{name}={value} is not a boolean"
        assert timestamp > 1_000_000_000_000_000_000  # nanoseconds
        parsed.append((measurement, tags, fields, timestamp))
    return parsed


def _reading(meter_id: str, at_ms: int, *, power_w: float, relay: RelayState) -> Reading:
    return Reading(
        meter_id=meter_id,
        at_ms=at_ms,
        relay=relay,
        voltage_v=229,  # an integer on the wire must still be written as a float
        current_a=0.0,
        active_power_w=power_w,
        power_factor=1,
        frequency_hz=50.0,
        import_wh=12,
        export_wh=0,
        import_vah=13,
    )


def test_batch_lines_follow_the_schema_and_are_deterministic() -> None:
    at_ms = 1_800_000_000_123
    batch = TelemetryBatch(
        dcu_id="DCU01",
        batch_id="b1",
        historical=True,
        readings=[
            _reading("MTR1", at_ms, power_w=-512.5, relay=RelayState.CONNECTED),
            _reading("MTR2", at_ms, power_w=0, relay=RelayState.READY_FOR_RECONNECTION),
        ],
        profile=[
            LoadProfileBlock(
                meter_id="MTR1",
                block_start_ms=1_800_000_000_000 - 900_000,
                avg_voltage_v=231.25,
                avg_current_a=1e-05,
                import_wh=40,
                export_wh=3,
            )
        ],
        at_ms=at_ms + 5,
        dropped_readings=17,
    )
    parsed = _check(batch_lines(batch))
    assert batch_lines(batch) == batch_lines(batch.model_copy())  # a replay writes the same points

    readings = [p for p in parsed if p[0] == "meter_reading"]
    assert [(t["meter_id"], t["dcu_id"], ts) for _, t, _, ts in readings] == [
        ("MTR1", "DCU01", at_ms * 1_000_000),
        ("MTR2", "DCU01", at_ms * 1_000_000),
    ]
    assert readings[0][2]["voltage_v"] == "229.0" and readings[0][2]["historical"] == "true"
    assert [r[2]["relay_state"] for r in readings] == ["1i", "2i"]
    (gateway,) = [p for p in parsed if p[0] == "gateway_telemetry"]
    assert gateway[2]["dropped_readings"] == "17i" and gateway[2]["readings"] == "2i"
    assert {p[0] for p in parsed} == {"meter_reading", "load_profile", "gateway_telemetry"}


def test_event_presence_and_command_lines_follow_the_schema() -> None:
    created = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    lines = (
        event_line(
            MeterEvent(
                meter_id="MTR1",
                dcu_id="DCU01",
                code=302,
                seq=4,
                at_ms=1_800_000_000_000,
                relay=RelayState.CONNECTED,
            )
        )
        + event_line(
            MeterEvent(meter_id="MTR1", dcu_id="DCU01", code=101, seq=5, at_ms=1_800_000_000_001)
        )
        + gateway_state_line(
            GatewayState(
                dcu_id="DCU01",
                online=True,
                boot_seq=3,
                at_ms=1_800_000_000_000,
                meters=[MeterReport(meter_id="MTR1", reachable=True)],
            )
        )
        + command_line(
            dcu_id="DCU01",
            meter_id="MTR1",
            action="connect",
            origin="payment",
            outcome="SUCCEEDED",
            created_at=created,
            finished_at=created + timedelta(milliseconds=42),
            attempts=1,
            payment_to_power_ms=47.5,
        )
    )
    event, power_fail, presence, command = _check(lines)
    assert event[1]["code"] == "302" and event[2] == {"seq": "4i", "relay_state": "1i"}
    assert "relay_state" not in power_fail[2]
    assert presence[2] == {"online": "1i", "boot_seq": "3i", "meters": "1i"}
    whole_s = int(created.replace(microsecond=0).timestamp())
    assert command[3] == whole_s * 1_000_000_000 + 123_456_000  # microseconds kept
    assert float(command[2]["latency_ms"]) == 42.0
    assert float(command[2]["payment_to_power_ms"]) == 47.5
