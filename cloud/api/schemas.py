"""Response and request bodies of the HTTP API."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloud.db.models import AuditEntry, Command, CommandTransition, Gateway, Meter
from wire import Action, RelayState

T = TypeVar("T")

PowerStatus = Literal["connected", "disconnected"]


def power_status(meter: Meter) -> PowerStatus:
    """Connected only when the meter's relay (reported, else desired) is closed."""
    relay = meter.reported_relay or meter.desired_relay
    return "connected" if relay == RelayState.CONNECTED.value else "disconnected"


# Free text from a client: PostgreSQL cannot store NUL in text, so it is refused at the door
# (422) rather than failing in the database; the schema says so, and generated clients know.
Text200 = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class DuesOut(BaseModel):
    """What the consumer sees before paying."""

    account_id: str
    outstanding_paise: int
    reconnection_fee_paise: int
    total_payable_paise: int
    credit_paise: int
    currency: str
    relay: RelayState | None
    power: PowerStatus
    message: str


class MeterOut(BaseModel):
    """A meter: desired and reported relay state, control mode, DCU, last seen."""

    model_config = ConfigDict(from_attributes=True)

    meter_id: str
    dcu_id: str
    desired_relay: RelayState
    desired_version: int
    desired_at: datetime
    reported_relay: RelayState | None
    reported_at: datetime | None
    control_mode: int
    reported_control_mode: int | None
    installed_on: date | None
    last_seen_at: datetime | None


class AccountOut(BaseModel):
    """An account with its meter, balance and power status."""

    account_id: str
    consumer_name: str
    meter_id: str
    balance_paise: int
    total_payable_paise: int
    status: PowerStatus
    meter: MeterOut


class TransitionOut(BaseModel):
    """One lifecycle step of a command."""

    model_config = ConfigDict(from_attributes=True)

    from_state: str | None
    to_state: str
    at: datetime
    detail: str


class CommandOut(BaseModel):
    """A relay command and where it is in its lifecycle."""

    model_config = ConfigDict(from_attributes=True)

    command_id: str
    meter_id: str
    dcu_id: str
    action: Action
    version: int
    reason: str
    origin: str
    actor: str | None
    payment_id: str | None
    state: str
    attempts: int
    requested_at: datetime
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    relay_result: RelayState | None
    event_code: int | None
    detail: str


class CommandDetailOut(CommandOut):
    """A command with every transition and its timestamp."""

    transitions: list[TransitionOut]

    @classmethod
    def build(cls, command: Command, transitions: list[CommandTransition]) -> CommandDetailOut:
        """Assemble from the row and its transitions."""
        base = CommandOut.model_validate(command).model_dump()
        return cls(**base, transitions=[TransitionOut.model_validate(t) for t in transitions])


class CommandRequestIn(BaseModel):
    """An operator's manual relay command."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    reason: Text200


class GatewayOut(BaseModel):
    """A DCU's presence."""

    model_config = ConfigDict(from_attributes=True)

    dcu_id: str
    online: bool
    boot_seq: int
    meter_count: int
    last_birth_at: datetime | None
    last_will_at: datetime | None
    state_changed_at: datetime | None
    telemetry_dropped_readings: int = 0

    @classmethod
    def build(cls, gateway: Gateway) -> GatewayOut:
        """From the row."""
        return cls.model_validate(gateway)


class WebhookOut(BaseModel):
    """The webhook's answer."""

    status: Literal["processed", "duplicate", "ignored", "unmatched"]
    payment_id: str | None = None
    command_id: str | None = None


class PaymentConflictOut(BaseModel):
    """A known payment id delivered again with another amount, currency or account."""

    model_config = ConfigDict(from_attributes=True)

    conflict_id: int
    payment_id: str
    event_id: str
    recorded_amount_paise: int
    recorded_currency: str
    recorded_account_ref: str | None
    claimed_amount_paise: int
    claimed_currency: str
    claimed_account_ref: str | None
    received_at: datetime


class HealthOut(BaseModel):
    """Liveness with the state of the broker and database connections."""

    status: Literal["ok", "degraded"]
    database: Literal["ok", "error"]
    broker: Literal["connected", "disconnected"]
    instance_id: str


class AuditEntryOut(BaseModel):
    """One audit log entry: who (token name, role), when, what, on what, why, and the outcome."""

    audit_id: int
    at: datetime
    actor: str
    token_id: str | None
    role: str
    action: str
    target: str
    reason: str
    outcome: str
    detail: dict[str, Any]

    @classmethod
    def build(cls, entry: AuditEntry) -> AuditEntryOut:
        """From the row; `detail` is stored as JSON text."""
        detail = json.loads(entry.detail) if entry.detail else {}
        return cls(
            audit_id=entry.audit_id,
            at=entry.at,
            actor=entry.actor,
            token_id=entry.token_id,
            role=entry.role,
            action=entry.action,
            target=entry.target,
            reason=entry.reason,
            outcome=entry.outcome,
            detail=detail if isinstance(detail, dict) else {"value": detail},
        )


class ErrorOut(BaseModel):
    """Every error: a stable machine-readable code and a message for people."""

    code: str
    message: str


class ReadingOut(BaseModel):
    """One instantaneous reading of a meter, as kept in the cloud database."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    relay: RelayState
    voltage_v: float
    current_a: float
    active_power_w: float
    power_factor: float
    frequency_hz: float
    import_wh: int
    export_wh: int
    import_vah: int
    historical: bool
