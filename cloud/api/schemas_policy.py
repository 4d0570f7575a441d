"""Request and response bodies of the ledger, safeguard, notification and policy endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator

from cloud.api.schemas import Text200
from cloud.db.models import (
    DcuQuarantine,
    Dispute,
    LedgerEntry,
    Notification,
    Protection,
)
from cloud.ledger import MAX_PAISE
from cloud.policy.reports import RunReport

Paise = Annotated[int, Field(strict=True, ge=-MAX_PAISE, le=MAX_PAISE)]
PositivePaise = Annotated[int, Field(strict=True, gt=0, le=MAX_PAISE)]
Reference = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BillIn(_In):
    """A bill from the billing system: what is owed for a period, and by when."""

    bill_id: Reference
    amount_paise: PositivePaise
    period_start: date
    period_end: date
    due_date: date
    issued_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> Self:
        if self.period_start > self.period_end:
            raise ValueError("period_start is after period_end")
        if self.due_date < self.period_end:
            raise ValueError("due_date is before the end of the billing period")
        return self


class AdjustmentIn(_In):
    """A correction: positive paise charge the consumer, negative paise credit them."""

    reference: Reference
    amount_paise: Paise
    reason: Text200

    @model_validator(mode="after")
    def _not_zero(self) -> Self:
        if self.amount_paise == 0:
            raise ValueError("amount_paise must not be zero")
        return self


class LedgerEntryOut(BaseModel):
    """One ledger entry; positive paise are owed by the consumer."""

    model_config = ConfigDict(from_attributes=True)

    entry_id: int
    account_id: str
    kind: str
    amount_paise: int
    reference: str
    description: str
    due_date: date | None
    period_start: date | None
    period_end: date | None
    created_at: datetime


class AdjustmentOut(LedgerEntryOut):
    """The adjustment, and the reconnect it queued if it cleared the dues."""

    command_id: str | None = None


class StatementLineOut(LedgerEntryOut):
    """An entry with the balance right after it."""

    balance_paise: int


class StatementOut(BaseModel):
    """An account statement in ledger order, with today's dues."""

    account_id: str
    currency: str
    opening_balance_paise: int
    closing_balance_paise: int
    outstanding_paise: int
    reconnection_fee_paise: int
    credit_paise: int
    total_payable_paise: int
    lines: list[StatementLineOut]


class ProtectionIn(_In):
    """Protect a consumer from disconnection."""

    kind: Literal["life_support", "essential_service"]
    reason: Text200


class ProtectionOut(BaseModel):
    """A protection; active while `ended_at` is null."""

    model_config = ConfigDict(from_attributes=True)

    protection_id: int
    account_id: str
    kind: str
    reason: str
    created_at: datetime
    created_by: str
    ended_at: datetime | None
    ended_by: str | None

    @classmethod
    def build(cls, row: Protection) -> ProtectionOut:
        """From the row."""
        return cls.model_validate(row)


class DisputeIn(_In):
    """Open a billing dispute or record a payment under protest."""

    kind: Literal["dispute", "payment_under_protest"]
    reason: Text200
    amount_paise: PositivePaise | None = None


class ResolveIn(_In):
    """How a dispute was settled."""

    resolution: Text200


class DisputeOut(BaseModel):
    """A dispute; open while `resolved_at` is null."""

    model_config = ConfigDict(from_attributes=True)

    dispute_id: int
    account_id: str
    kind: str
    reason: str
    amount_paise: int | None
    opened_at: datetime
    opened_by: str
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str

    @classmethod
    def build(cls, row: Dispute) -> DisputeOut:
        """From the row."""
        return cls.model_validate(row)


class NoticeIn(_In):
    """Serve the disconnection notice now through the notifier, or record one served offline."""

    channel: Literal["notifier", "hand_delivery", "registered_post"] = "notifier"
    served_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _served_at_only_offline(self) -> Self:
        if self.channel == "notifier" and self.served_at is not None:
            raise ValueError("served_at is only for notices served outside Switchyard")
        if self.channel != "notifier" and self.served_at is None:
            raise ValueError(f"served_at is required for a notice by {self.channel}")
        return self


class NotificationOut(BaseModel):
    """A message to a consumer, and when it was served."""

    model_config = ConfigDict(from_attributes=True)

    notification_id: int
    account_id: str
    kind: str
    channel: str
    recipient: str | None
    body: str
    reference: str
    served_at: datetime
    recorded_at: datetime
    actor: str | None

    @classmethod
    def build(cls, row: Notification) -> NotificationOut:
        """From the row."""
        return cls.model_validate(row)


class NoticeRunOut(BaseModel):
    """What one pass of reminders and notices sent."""

    reminders: int
    notices: int


class DisconnectionRunIn(_In):
    """Start a run; `dry_run` must be said explicitly."""

    dry_run: StrictBool


class QuarantineOut(BaseModel):
    """A DCU whose share of cuts in a run exceeded the limit."""

    model_config = ConfigDict(from_attributes=True)

    dcu_id: str
    meter_count: int
    would_disconnect: int
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None

    @classmethod
    def build(cls, row: DcuQuarantine) -> QuarantineOut:
        """From the row."""
        return cls.model_validate(row)


class RunResultOut(BaseModel):
    """What the run decided for one overdue account."""

    account_id: str
    meter_id: str
    dcu_id: str
    overdue_paise: int
    outcome: str
    rule: str | None
    rules: list[str]
    command_id: str | None
    command_state: str | None
    detail: str


class DisconnectionRunOut(BaseModel):
    """A run: when, how, counts by outcome and rule, command progress, and results."""

    run_id: str
    dry_run: bool
    trigger: str
    actor: str | None
    schedule_slot: str | None
    policy_time: datetime
    started_at: datetime
    finished_at: datetime | None
    kill_switch_engaged: bool
    total: int
    counts_by_outcome: dict[str, int]
    counts_by_rule: dict[str, int]
    command_states: dict[str, int]
    quarantines: list[QuarantineOut]
    results: list[RunResultOut]
    next_cursor: str | None = None

    @classmethod
    def build(cls, report: RunReport, next_cursor: str | None) -> DisconnectionRunOut:
        """From a run report."""
        run = report.run
        return cls(
            run_id=run.run_id,
            dry_run=run.dry_run,
            trigger=run.trigger,
            actor=run.actor,
            schedule_slot=run.schedule_slot,
            policy_time=run.policy_time,
            started_at=run.started_at,
            finished_at=run.finished_at,
            kill_switch_engaged=run.kill_switch_engaged,
            total=report.total,
            counts_by_outcome=report.by_outcome,
            counts_by_rule=report.by_rule,
            command_states=report.command_states,
            quarantines=[QuarantineOut.build(q) for q in report.quarantines],
            results=[
                RunResultOut(
                    account_id=row.result.account_id,
                    meter_id=row.result.meter_id,
                    dcu_id=row.result.dcu_id,
                    overdue_paise=row.result.overdue_paise,
                    outcome=row.result.outcome,
                    rule=row.result.rule,
                    rules=[r for r in row.result.rules.split(",") if r],
                    command_id=row.result.command_id,
                    command_state=row.command_state,
                    detail=row.result.detail,
                )
                for row in report.results
            ],
            next_cursor=next_cursor,
        )


class KillSwitchIn(_In):
    """Engage or release the global kill switch."""

    engaged: StrictBool
    reason: Text200


class KillSwitchOut(BaseModel):
    """The kill switch now, and how many pending policy cuts engaging it withdrew."""

    engaged: bool
    reason: str
    changed_at: datetime | None
    changed_by: str | None
    withdrawn_commands: int = 0


class HolidayOut(BaseModel):
    """One date on which the policy never disconnects."""

    date: date
    name: str
    provisional: bool = False


class PolicyOut(BaseModel):
    """The policy in force: every setting, the holiday calendar, the kill switch, the clock."""

    settings: dict[str, Any]
    rules: list[str]
    holidays_source: str
    holidays_note: str
    holidays: list[HolidayOut]
    kill_switch: KillSwitchOut
    scheduler_enabled: bool
    policy_time: datetime
    clock_fixed: bool
    reconnection_fee_paise: int


def entry_out(entry: LedgerEntry) -> LedgerEntryOut:
    """A ledger entry for the API."""
    return LedgerEntryOut.model_validate(entry)
