"""What a run decides for each overdue account, and how that is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cloud.db.models import DisconnectionRunResult
from cloud.policy.rules import AccountSnapshot, Rule


class Outcome(StrEnum):
    """What a run did (or, in a dry run, would do) with one overdue account."""

    DISCONNECT = "disconnect"
    BLOCKED = "blocked"
    QUARANTINED = "quarantined"
    CAPPED = "capped"
    ALREADY_DISCONNECTED = "already_disconnected"
    NOT_OVERDUE = "not_overdue"
    HALTED = "halted"


class QuarantineStatus(StrEnum):
    """Where a quarantined DCU stands."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass
class Decision:
    """One account's outcome, the rules behind it, and its command (if one was queued)."""

    snapshot: AccountSnapshot
    outcome: Outcome
    rules: Sequence[Rule] = ()
    command_id: str | None = None
    detail: str = ""


def priority(decision: Decision) -> tuple[int, str]:
    """Largest arrears first, so a cap holds back the smaller debts."""
    return (-decision.snapshot.overdue_paise, decision.snapshot.account_id)


def result_row(run_id: str, decision: Decision) -> DisconnectionRunResult:
    """The stored result of one account."""
    snapshot = decision.snapshot
    return DisconnectionRunResult(
        run_id=run_id,
        account_id=snapshot.account_id,
        meter_id=snapshot.meter_id,
        dcu_id=snapshot.dcu_id,
        overdue_paise=snapshot.overdue_paise,
        outcome=decision.outcome.value,
        rule=decision.rules[0].value if decision.rules else None,
        rules=",".join(rule.value for rule in decision.rules),
        command_id=decision.command_id,
        detail=decision.detail,
    )


def update_row(row: DisconnectionRunResult, decision: Decision, detail: str) -> None:
    """Overwrite a stored result with a later decision (a quarantine confirmed)."""
    row.outcome = decision.outcome.value
    row.rule = decision.rules[0].value if decision.rules else None
    row.rules = ",".join(rule.value for rule in decision.rules)
    row.command_id = decision.command_id
    row.detail = detail[:200]
