"""The time-series schema the cloud writes: the one declaration the writer and dashboards follow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class FieldType(StrEnum):
    """InfluxDB field types; a field keeps one type for life, so each is declared once here."""

    FLOAT = "float"
    INTEGER = "integer"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Measurement:
    """One measurement: its tags (indexed, low cardinality) and typed fields."""

    name: str
    tags: frozenset[str]
    fields: Mapping[str, FieldType]
    # What the point's timestamp is; with the tags it identifies the point, so a replay of the
    # same data overwrites the point instead of adding a second one.
    time: str


def _fields(**types: FieldType) -> Mapping[str, FieldType]:
    return MappingProxyType(dict(types))


FLOAT, INT, BOOL = FieldType.FLOAT, FieldType.INTEGER, FieldType.BOOLEAN

# relay_state is the IC 70 control_state: 0 disconnected, 1 connected, 2 ready_for_reconnection.
METER_READING = Measurement(
    "meter_reading",
    tags=frozenset({"dcu_id", "meter_id"}),
    fields=_fields(
        voltage_v=FLOAT,
        current_a=FLOAT,
        active_power_w=FLOAT,
        power_factor=FLOAT,
        frequency_hz=FLOAT,
        import_wh=INT,
        export_wh=INT,
        import_vah=INT,
        relay_state=INT,
        historical=BOOL,
    ),
    time="the meter's reading time (at_ms)",
)
LOAD_PROFILE = Measurement(
    "load_profile",
    tags=frozenset({"dcu_id", "meter_id"}),
    fields=_fields(
        avg_voltage_v=FLOAT, avg_current_a=FLOAT, import_wh=INT, export_wh=INT, historical=BOOL
    ),
    time="the start of the 15-minute block",
)
METER_EVENT = Measurement(
    "meter_event",
    tags=frozenset({"dcu_id", "meter_id", "code"}),
    fields=_fields(seq=INT, relay_state=INT),
    time="the meter's event time",
)
# One point per command that reached a final state; payment_to_power_ms only for a payment's
# reconnect that succeeded (webhook receipt to relay confirmed).
COMMAND = Measurement(
    "command",
    tags=frozenset({"dcu_id", "meter_id", "action", "origin", "outcome"}),
    fields=_fields(latency_ms=FLOAT, payment_to_power_ms=FLOAT, attempts=INT),
    time="when the command was created",
)
GATEWAY_STATE = Measurement(
    "gateway_state",
    tags=frozenset({"dcu_id"}),
    fields=_fields(online=INT, boot_seq=INT, meters=INT),
    time="the gateway's birth or Will time",
)
# dropped_readings is the gateway's running total of readings its full backlog had to drop.
GATEWAY_TELEMETRY = Measurement(
    "gateway_telemetry",
    tags=frozenset({"dcu_id"}),
    fields=_fields(readings=INT, profile_blocks=INT, historical=BOOL, dropped_readings=INT),
    time="when the gateway formed the batch, plus a sub-millisecond offset from its batch id",
)

MEASUREMENTS: Mapping[str, Measurement] = MappingProxyType(
    {
        m.name: m
        for m in (
            METER_READING,
            LOAD_PROFILE,
            METER_EVENT,
            COMMAND,
            GATEWAY_STATE,
            GATEWAY_TELEMETRY,
        )
    }
)
