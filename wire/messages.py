"""Pydantic models of every MQTT payload, and their JSON encoding and strict decoding."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wire.errors import MalformedMessage
from wire.ids import CommandId, DcuId, MeterId
from wire.limits import check_bounds

MAX_REASON_CHARS = 200
# Load-profile blocks are 15 minutes long and aligned to the quarter hour (IS 15959).
PROFILE_BLOCK_MS = 15 * 60 * 1000


class RelayState(StrEnum):
    """Relay state as read back from the meter (DLMS IC 70 control_state)."""

    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    READY_FOR_RECONNECTION = "ready_for_reconnection"


class Action(StrEnum):
    """What a command asks the relay to do."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"

    @property
    def target(self) -> RelayState:
        """The relay state this action aims for."""
        return RelayState.CONNECTED if self is Action.CONNECT else RelayState.DISCONNECTED


class AckStatus(StrEnum):
    """How far the gateway got with a command."""

    RECEIVED = "received"
    EXECUTED = "executed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class EventCode(IntEnum):
    """Meter event codes (IS 15959 style) that travel on the event topic and in acks."""

    POWER_FAIL = 101
    POWER_RESTORE = 102
    LOAD_SWITCH_DISCONNECTED = 301
    LOAD_SWITCH_CONNECTED = 302
    OVERLOAD_TRIP = 303
    TAMPER_COVER_OPEN = 251


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS)]
UnixMs = Annotated[int, Field(ge=0)]
# The meter's own event-log sequence (DLMS IC 7 entries) when its relay was read: it only grows,
# so with the read's start it orders what gateways report about a meter (docs/design.md).
EventSeq = Annotated[int, Field(ge=0)]
# A measured value: NaN and infinity are refused, the time-series store could not keep them.
Measured = Annotated[float, Field(allow_inf_nan=False)]


class Command(_Message):
    """One signed relay command, cloud to edge, on `.../meter/{meter}/cmd`."""

    command_id: CommandId
    meter_id: MeterId
    dcu_id: DcuId
    action: Action
    version: Annotated[int, Field(ge=1)]
    reason: Reason
    issued_at_ms: UnixMs
    expires_at_ms: UnixMs
    key_id: Annotated[str, Field(min_length=1, max_length=64)]
    signature: Annotated[str, Field(min_length=1, max_length=200)]


class Ack(_Message):
    """The gateway's answer about one command, edge to cloud, on `.../meter/{meter}/ack`."""

    command_id: CommandId
    meter_id: MeterId
    dcu_id: DcuId
    status: AckStatus
    relay: RelayState | None = None
    event_code: int | None = None
    version: int | None = None
    at_ms: UnixMs
    reason: Reason = ""
    # Where the relay read back sits in the meter's history: its event sequence then, and when
    # (gateway clock) that read began. None from a gateway that predates them.
    event_seq: EventSeq | None = None
    read_ms: UnixMs | None = None
    # True when trying again may help: `failed` because the meter did not answer, or `rejected`
    # for one copy whose refusal the gateway did not keep (unverified signature, wrong topic,
    # malformed), so that a forged copy cannot end the genuine command.
    retryable: bool = False


class MeterEvent(_Message):
    """One entry of a meter's event log, edge to cloud, on `.../meter/{meter}/event`."""

    meter_id: MeterId
    dcu_id: DcuId
    code: int
    seq: Annotated[int, Field(ge=0)]
    at_ms: UnixMs
    relay: RelayState | None = None
    detail: Reason = ""


class MeterReport(_Message):
    """One meter in a gateway's birth roster."""

    meter_id: MeterId
    reachable: bool
    relay: RelayState | None = None
    control_mode: Annotated[int, Field(ge=0, le=6)] | None = None
    last_version: Annotated[int, Field(ge=0)] = 0
    # As on an Ack: the meter's event sequence at this read, and when the read began.
    event_seq: EventSeq | None = None
    read_ms: UnixMs | None = None


class GatewayState(_Message):
    """Retained presence of one DCU: birth (online, with roster) or its MQTT Will (offline)."""

    dcu_id: DcuId
    online: bool
    boot_seq: Annotated[int, Field(ge=0)]
    at_ms: UnixMs
    meters: list[MeterReport] = Field(default_factory=list)


class Reading(_Message):
    """Instantaneous register values of one meter at one instant."""

    meter_id: MeterId
    at_ms: UnixMs
    relay: RelayState
    voltage_v: Measured
    current_a: Measured
    active_power_w: Measured
    power_factor: Measured
    frequency_hz: Measured
    import_wh: Annotated[int, Field(ge=0)]
    export_wh: Annotated[int, Field(ge=0)]
    import_vah: Annotated[int, Field(ge=0)]
    # The meter's event sequence at this reading (None from a meter link that predates it).
    event_seq: EventSeq | None = None


class LoadProfileBlock(_Message):
    """One 15-minute block of a meter's load profile."""

    meter_id: MeterId
    block_start_ms: UnixMs
    avg_voltage_v: Measured
    avg_current_a: Measured
    import_wh: Annotated[int, Field(ge=0)]
    export_wh: Annotated[int, Field(ge=0)]


class TelemetryBatch(_Message):
    """A batch of readings from one DCU, edge to cloud, on `sy/v1/dcu/{dcu}/telemetry`."""

    dcu_id: DcuId
    batch_id: Annotated[str, Field(min_length=1, max_length=64)]
    historical: bool = False
    readings: list[Reading] = Field(default_factory=list)
    profile: list[LoadProfileBlock] = Field(default_factory=list)
    # When the gateway formed the batch, by its own clock (meter time may run accelerated).
    at_ms: UnixMs = 0
    # When the gateway began reading these meters, by its own clock (None: not told).
    read_ms: UnixMs | None = None
    # Readings and profile blocks this gateway dropped from its full backlog, since its store
    # was created: a running total, so a lost batch cannot hide a drop.
    dropped_readings: Annotated[int, Field(ge=0)] = 0


WireModel = Command | Ack | MeterEvent | GatewayState | TelemetryBatch
M = TypeVar("M", bound=BaseModel)
Kind = Literal["cmd", "ack", "event", "telemetry", "state"]


def encode(message: BaseModel) -> bytes:
    """Serialise a wire model to its compact JSON payload."""
    return message.model_dump_json().encode()


def decode(model: type[M], payload: bytes | str) -> M:
    """Parse and validate a payload; raise MalformedMessage with the reason on any defect."""
    check_bounds(model.__name__, payload)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "payload"
        raise MalformedMessage(model.__name__, f"{where}: {first.get('msg', 'invalid')}") from exc
