"""An operator's decision on a quarantined DCU: reject it, or confirm it — then every rule is
checked again and the caps still hold; only the share limit is overridden."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import DcuQuarantine, DisconnectionRunResult
from cloud.errors import Conflict, NotFound
from cloud.policy.controls import kill_switch
from cloud.policy.decisions import Decision, Outcome, QuarantineStatus, priority, update_row
from cloud.policy.issuing import CommandIssuer, dcu_loads
from cloud.policy.rules import RuleBook, account_rules, window_rules
from cloud.policy.safety import SafetyLimits, plan_dcu
from cloud.policy.snapshot import load_snapshots
from wire import RelayState


async def decide_quarantine(
    session: AsyncSession,
    issuer: CommandIssuer,
    book: RuleBook,
    limits: SafetyLimits,
    *,
    run_id: str,
    dcu_id: str,
    confirm: bool,
    actor: str,
    now: datetime,
    policy_now: datetime,
) -> tuple[DcuQuarantine, int]:
    """Record the decision; on confirm, queue what still passes. Returns (quarantine, queued)."""
    quarantine = (
        await session.execute(
            select(DcuQuarantine)
            .where(DcuQuarantine.run_id == run_id, DcuQuarantine.dcu_id == dcu_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if quarantine is None:
        raise NotFound(f"run {run_id} has no quarantine on {dcu_id}")
    if quarantine.status != QuarantineStatus.PENDING.value:
        raise Conflict(f"quarantine of {dcu_id} was already {quarantine.status}")
    held = list(
        (
            await session.execute(
                select(DisconnectionRunResult).where(
                    DisconnectionRunResult.run_id == run_id,
                    DisconnectionRunResult.dcu_id == dcu_id,
                    DisconnectionRunResult.outcome == Outcome.QUARANTINED.value,
                )
            )
        ).scalars()
    )
    quarantine.decided_at, quarantine.decided_by = now, actor
    if not confirm:
        quarantine.status = QuarantineStatus.REJECTED.value
        for row in held:
            row.detail = f"quarantine rejected by {actor}"
        return quarantine, 0
    if (await kill_switch(session)).engaged:
        raise Conflict("the kill switch is engaged", code="kill_switch_engaged")
    quarantine.status = QuarantineStatus.CONFIRMED.value
    rows = {row.account_id: row for row in held}
    snapshots = await load_snapshots(session, issuer.criteria(policy_now), list(rows))
    found = {snapshot.account_id for snapshot in snapshots}
    detail = f"confirmed by {actor}"
    for account_id in set(rows) - found:
        rows[account_id].outcome, rows[account_id].rule, rows[account_id].rules = (
            Outcome.NOT_OVERDUE.value,
            None,
            "",
        )
        rows[account_id].detail = detail
    closed = window_rules(policy_now, book)
    ready: list[Decision] = []
    for snapshot in snapshots:
        if snapshot.desired_relay != RelayState.CONNECTED.value:
            decision = Decision(snapshot, Outcome.ALREADY_DISCONNECTED)
        else:
            rules = account_rules(snapshot, policy_now, book) + closed
            decision = Decision(snapshot, Outcome.BLOCKED if rules else Outcome.DISCONNECT, rules)
        if decision.outcome is Outcome.DISCONNECT:
            ready.append(decision)
        else:
            update_row(rows[snapshot.account_id], decision, detail)
    ready.sort(key=priority)
    load = (await dcu_loads(session, [dcu_id], now))[dcu_id]
    plan = plan_dcu(
        [d.snapshot.account_id for d in ready], load, replace(limits, max_share_percent=100)
    )
    to_issue: list[Decision] = []
    for decision in ready:
        cap = plan.held.get(decision.snapshot.account_id)
        if cap is None:
            to_issue.append(decision)
            continue
        decision.outcome, decision.rules = Outcome.CAPPED, (cap,)
        update_row(rows[decision.snapshot.account_id], decision, detail)
    issued = await issuer.issue(session, run_id, to_issue, rows, actor, detail) if to_issue else 0
    return quarantine, issued
