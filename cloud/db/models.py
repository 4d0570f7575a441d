"""The cloud's tables: accounts, meters, gateways, the ledger, payments and the command outbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloud.db.types import UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every cloud table."""


class Meter(Base):
    """A smart meter: where it hangs (DCU), what we want its relay to be, what it last said."""

    __tablename__ = "meters"

    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dcu_id: Mapped[str] = mapped_column(String(64), index=True)
    control_mode: Mapped[int] = mapped_column(Integer, default=2)
    installed_on: Mapped[date | None] = mapped_column(Date)
    desired_relay: Mapped[str] = mapped_column(String(32))
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    desired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reported_relay: Mapped[str | None] = mapped_column(String(32))
    reported_control_mode: Mapped[int | None] = mapped_column(Integer)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Where reported_relay sits in the meter's own history (cloud/commands/reported.py): the
    # meter's event sequence, then when the gateway began the read; None until a gateway says.
    reported_event_seq: Mapped[int | None] = mapped_column(BigInteger)
    reported_read_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Account(Base):
    """A consumer account, billed in paise, with one meter."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumer_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.meter_id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Gateway(Base):
    """A data concentrator (DCU) and its presence as told by its birth and Will."""

    __tablename__ = "gateways"

    dcu_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    boot_seq: Mapped[int] = mapped_column(Integer, default=0)
    meter_count: Mapped[int] = mapped_column(Integer, default=0)
    last_birth_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_will_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The gateway's running total of readings its full telemetry backlog had to drop.
    telemetry_dropped_readings: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0"
    )


class LedgerEntry(Base):
    """One money movement on an account; positive paise is owed by the consumer."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("kind", "reference", name="uq_ledger_kind_reference"),)

    entry_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(200), default="")
    due_date: Mapped[date | None] = mapped_column(Date)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Payment(Base):
    """A payment as the gateway reported it; unmatched ones wait for manual reconciliation."""

    __tablename__ = "payments"

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128))
    account_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.account_id"))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookEvent(Base):
    """Every authenticated webhook delivery, stored before it is answered."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    body: Mapped[str] = mapped_column(Text)


class PaymentConflict(Base):
    """A known payment id delivered again with another amount, currency or account: the
    recorded payment stands, and this claim waits for reconciliation."""

    __tablename__ = "payment_conflicts"

    conflict_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    recorded_amount_paise: Mapped[int] = mapped_column(BigInteger)
    recorded_currency: Mapped[str] = mapped_column(String(3))
    recorded_account_ref: Mapped[str | None] = mapped_column(String(64))
    claimed_amount_paise: Mapped[int] = mapped_column(BigInteger)
    claimed_currency: Mapped[str] = mapped_column(String(3))
    claimed_account_ref: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Command(Base):
    """A relay command in the outbox, with its lifecycle state and signed payload."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_state_next", "state", "next_attempt_at"),
        Index("ix_commands_meter_created", "meter_id", "created_at"),
        Index("ix_commands_dcu_state", "dcu_id", "state"),
    )

    command_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.meter_id"))
    dcu_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    payload: Mapped[str] = mapped_column(Text)
    relay_result: Mapped[str | None] = mapped_column(String(32))
    event_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(200), default="")


class CommandTransition(Base):
    """One step of a command's lifecycle, kept for audit and latency measurement."""

    __tablename__ = "command_transitions"

    transition_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.command_id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str] = mapped_column(String(200), default="")


class MeterEventRecord(Base):
    """A meter's event as its gateway reported it (relay operations, power failures)."""

    __tablename__ = "meter_events"

    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.meter_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    dcu_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[int] = mapped_column(Integer)
    relay: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A named API bearer token; only the SHA-256 of its secret part is stored."""

    __tablename__ = "api_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(Base):
    """One operator action or refused attempt: who, when, what, why, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_action_at", "action", "at"),
        Index("ix_audit_actor_at", "actor", "at"),
    )

    audit_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200), default="")
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class Protection(Base):
    """A consumer who must not be disconnected (life support, essential service) while active."""

    __tablename__ = "protections"

    protection_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))


class Dispute(Base):
    """A billing dispute or a payment under protest; while open, the account is not cut off."""

    __tablename__ = "disputes"

    dispute_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(200), default="")
    amount_paise: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolution: Mapped[str] = mapped_column(String(200), default="")


class Notification(Base):
    """A message to a consumer (reminder, disconnection notice, ...), kept as evidence."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_account_kind", "account_id", "kind"),)

    notification_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id"))
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(240), unique=True)
    served_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str | None] = mapped_column(String(64))


class DisconnectionRun(Base):
    """One evaluation of the disconnection policy over every overdue account."""

    __tablename__ = "disconnection_runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(64))
    schedule_slot: Mapped[str | None] = mapped_column(String(32), unique=True)
    policy_time: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Null while its disconnects are being queued (or if the process died doing so).
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    kill_switch_engaged: Mapped[bool] = mapped_column(Boolean, default=False)


class DisconnectionRunResult(Base):
    """What a run decided for one overdue account, and the rule that held it back."""

    __tablename__ = "disconnection_run_results"

    run_id: Mapped[str] = mapped_column(ForeignKey("disconnection_runs.run_id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    meter_id: Mapped[str] = mapped_column(String(64))
    dcu_id: Mapped[str] = mapped_column(String(64))
    overdue_paise: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(String(32))
    rules: Mapped[str] = mapped_column(String(400), default="")
    command_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str] = mapped_column(String(200), default="")


class DcuQuarantine(Base):
    """A run's disconnections on one DCU, held because they exceed the share limit."""

    __tablename__ = "dcu_quarantines"

    run_id: Mapped[str] = mapped_column(ForeignKey("disconnection_runs.run_id"), primary_key=True)
    dcu_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    meter_count: Mapped[int] = mapped_column(Integer)
    would_disconnect: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))


class PolicyControl(Base):
    """A runtime switch of the policy, such as the global kill switch."""

    __tablename__ = "policy_controls"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    engaged: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(200), default="")
    changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    changed_by: Mapped[str | None] = mapped_column(String(64))


class Lease(Base):
    """A named lease one cloud process holds at a time (claimed by a conditional UPDATE)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MeterReadingRecord(Base):
    """An instantaneous reading, kept in the cloud database when there is no InfluxDB."""

    __tablename__ = "meter_readings"
    __table_args__ = (Index("ix_meter_readings_at", "at"),)

    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    dcu_id: Mapped[str] = mapped_column(String(64))
    relay: Mapped[str] = mapped_column(String(32))
    voltage_v: Mapped[float] = mapped_column(Float)
    current_a: Mapped[float] = mapped_column(Float)
    active_power_w: Mapped[float] = mapped_column(Float)
    power_factor: Mapped[float] = mapped_column(Float)
    frequency_hz: Mapped[float] = mapped_column(Float)
    import_wh: Mapped[int] = mapped_column(BigInteger)
    export_wh: Mapped[int] = mapped_column(BigInteger)
    import_vah: Mapped[int] = mapped_column(BigInteger)
    historical: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TelemetryBatchRecord(Base):
    """A gateway's telemetry batch the cloud has kept (written or spooled): a repeat is skipped."""

    __tablename__ = "telemetry_batches"
    __table_args__ = (Index("ix_telemetry_batches_kept_at", "kept_at"),)

    dcu_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kept_at: Mapped[datetime] = mapped_column(UtcDateTime)
