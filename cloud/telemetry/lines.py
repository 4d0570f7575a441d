"""InfluxDB line protocol for what the cloud writes, exactly as `schema` declares it."""

from __future__ import annotations

import zlib
from datetime import datetime

from cloud.telemetry.schema import (
    COMMAND,
    GATEWAY_STATE,
    GATEWAY_TELEMETRY,
    LOAD_PROFILE,
    METER_EVENT,
    METER_READING,
)
from wire import GatewayState, MeterEvent, RelayState, TelemetryBatch

# Ids need no escaping: wire.ids allows only letters, digits and `_.-` in them, and pydantic
# has validated every id before it gets here. Timestamps are nanoseconds throughout.
_NS_PER_MS = 1_000_000
_RELAY_CODE = {
    RelayState.DISCONNECTED: 0,
    RelayState.CONNECTED: 1,
    RelayState.READY_FOR_RECONNECTION: 2,
}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ns(value: datetime) -> int:
    # Integer arithmetic: float seconds would lose the microseconds that keep points apart.
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def batch_lines(batch: TelemetryBatch) -> bytes:
    """Every reading and profile block of a batch, and one line about the batch itself."""
    dcu = batch.dcu_id
    hist = _bool(batch.historical)
    reading = METER_READING.name
    profile = LOAD_PROFILE.name
    lines = [
        f"{reading},dcu_id={dcu},meter_id={r.meter_id}"
        f" voltage_v={r.voltage_v},current_a={r.current_a},active_power_w={r.active_power_w}"
        f",power_factor={r.power_factor},frequency_hz={r.frequency_hz}"
        f",import_wh={r.import_wh}i,export_wh={r.export_wh}i,import_vah={r.import_vah}i"
        f",relay_state={_RELAY_CODE[r.relay]}i,historical={hist} {r.at_ms * _NS_PER_MS}\n"
        for r in batch.readings
    ]
    lines += [
        f"{profile},dcu_id={dcu},meter_id={b.meter_id}"
        f" avg_voltage_v={b.avg_voltage_v},avg_current_a={b.avg_current_a}"
        f",import_wh={b.import_wh}i,export_wh={b.export_wh}i,historical={hist}"
        f" {b.block_start_ms * _NS_PER_MS}\n"
        for b in batch.profile
    ]
    if batch.at_ms:
        # Several batches of one gateway may share a millisecond; the offset keeps them apart
        # and is the same every time the same batch arrives.
        offset_ns = zlib.crc32(batch.batch_id.encode()) % _NS_PER_MS
        lines.append(
            f"{GATEWAY_TELEMETRY.name},dcu_id={dcu} readings={len(batch.readings)}i"
            f",profile_blocks={len(batch.profile)}i,historical={hist}"
            f",dropped_readings={batch.dropped_readings}i"
            f" {batch.at_ms * _NS_PER_MS + offset_ns}\n"
        )
    return "".join(lines).encode()


def event_line(event: MeterEvent) -> bytes:
    """One meter event (relay switched, power failed or restored, ...)."""
    relay = f",relay_state={_RELAY_CODE[event.relay]}i" if event.relay is not None else ""
    return (
        f"{METER_EVENT.name},code={event.code},dcu_id={event.dcu_id},meter_id={event.meter_id}"
        f" seq={event.seq}i{relay} {event.at_ms * _NS_PER_MS}\n"
    ).encode()


def gateway_state_line(state: GatewayState) -> bytes:
    """A gateway's birth (online) or Will (offline)."""
    return (
        f"{GATEWAY_STATE.name},dcu_id={state.dcu_id} online={int(state.online)}i"
        f",boot_seq={state.boot_seq}i,meters={len(state.meters)}i {state.at_ms * _NS_PER_MS}\n"
    ).encode()


def command_line(
    *,
    dcu_id: str,
    meter_id: str,
    action: str,
    origin: str,
    outcome: str,
    created_at: datetime,
    finished_at: datetime,
    attempts: int,
    payment_to_power_ms: float | None,
) -> bytes:
    """A command that reached its final state, with how long it took."""
    latency_ms = (finished_at - created_at).total_seconds() * 1000
    power = f",payment_to_power_ms={payment_to_power_ms}" if payment_to_power_ms is not None else ""
    return (
        f"{COMMAND.name},action={action},dcu_id={dcu_id},meter_id={meter_id}"
        f",origin={origin},outcome={outcome} latency_ms={float(latency_ms)}{power}"
        f",attempts={attempts}i {_ns(created_at)}\n"
    ).encode()
