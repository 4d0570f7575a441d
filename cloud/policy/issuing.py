"""Queueing policy disconnects: each account is judged again under its meter's row lock, and its
command is written in the same transaction as its result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock
from cloud.commands.desired import CommandFactory, RelayRequest, request_relay
from cloud.commands.lifecycle import Origin
from cloud.db.models import Command, DisconnectionRunResult, Meter
from cloud.policy.controls import kill_switch
from cloud.policy.decisions import Decision, Outcome, update_row
from cloud.policy.rules import (
    Rule,
    RuleBook,
    account_rules,
    window_closes_at,
    window_rules,
)
from cloud.policy.safety import DcuLoad
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import OverdueCriteria, load_snapshots
from wire import Action, RelayState


async def dcu_loads(session: AsyncSession, dcu_ids: list[str], now: datetime) -> dict[str, DcuLoad]:
    """Meters per DCU, and the policy disconnects issued on each in the hour before `now`."""
    meters = dict(
        (
            await session.execute(
                select(Meter.dcu_id, func.count())
                .where(Meter.dcu_id.in_(dcu_ids))
                .group_by(Meter.dcu_id)
            )
        ).all()
    )
    recent = dict(
        (
            await session.execute(
                select(Command.dcu_id, func.count())
                .where(
                    Command.dcu_id.in_(dcu_ids),
                    Command.origin == Origin.POLICY.value,
                    Command.action == Action.DISCONNECT.value,
                    Command.created_at > now - timedelta(hours=1),
                )
                .group_by(Command.dcu_id)
            )
        ).all()
    )
    return {dcu: DcuLoad(meters.get(dcu, 0), recent.get(dcu, 0)) for dcu in dcu_ids}


class CommandIssuer:
    """Turns `disconnect` decisions into signed policy commands in the outbox."""

    def __init__(
        self,
        factory: CommandFactory,
        settings: PolicySettings,
        book: RuleBook,
        *,
        clock: Clock,
        policy_clock: Clock,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._book = book
        self._clock = clock
        self._policy_clock = policy_clock

    def criteria(self, policy_now: datetime) -> OverdueCriteria:
        """What counts as overdue at this policy instant."""
        return OverdueCriteria(
            today=self._book.local(policy_now).date(),
            grace_days=self._settings.grace_days,
            min_overdue_paise=self._settings.min_overdue_paise,
        )

    async def issue(
        self,
        session: AsyncSession,
        run_id: str,
        decisions: Sequence[Decision],
        rows: Mapping[str, DisconnectionRunResult],
        actor: str | None,
        detail: str = "",
    ) -> int:
        """Queue a disconnect for each decision that still holds; returns how many were queued.

        Judged again here, under the meters' locks: a payment, protection or dispute committed
        since the run read its snapshot wins, and so does the kill switch.
        """
        if (await kill_switch(session, for_update=True)).engaged:
            for decision in decisions:
                decision.outcome, decision.rules = Outcome.HALTED, (Rule.KILL_SWITCH,)
                update_row(rows[decision.snapshot.account_id], decision, detail)
            return 0
        meters = {
            meter.meter_id: meter
            for meter in (
                await session.execute(
                    select(Meter)
                    .where(Meter.meter_id.in_([d.snapshot.meter_id for d in decisions]))
                    .order_by(Meter.meter_id)
                    .with_for_update()
                )
            ).scalars()
        }
        policy_now = self._policy_clock()
        fresh = {
            snapshot.account_id: snapshot
            for snapshot in await load_snapshots(
                session, self.criteria(policy_now), [d.snapshot.account_id for d in decisions]
            )
        }
        closed = window_rules(policy_now, self._book)
        factory = self._factory_for(policy_now)
        now = self._clock()
        issued = 0
        # Each meter appears once per call, so nothing pending in this session concerns the
        # next meter's commands: one flush at the end instead of one before every query.
        with session.no_autoflush:
            for decision in decisions:
                meter = meters.get(decision.snapshot.meter_id)
                snapshot = fresh.get(decision.snapshot.account_id)
                rules = account_rules(snapshot, policy_now, self._book) + closed if snapshot else []
                if meter is None or meter.desired_relay != RelayState.CONNECTED.value:
                    decision.outcome = Outcome.ALREADY_DISCONNECTED
                elif snapshot is None:
                    decision.outcome = Outcome.NOT_OVERDUE
                elif rules:
                    decision.outcome, decision.rules = Outcome.BLOCKED, rules
                else:
                    request = RelayRequest(
                        meter_id=meter.meter_id,
                        action=Action.DISCONNECT,
                        reason=f"run {run_id}: {snapshot.overdue_paise} paise overdue",
                        origin=Origin.POLICY,
                        requested_at=now,
                        actor=actor,
                    )
                    command = await request_relay(session, meter, request, factory, now)
                    decision.command_id = command.command_id
                    issued += 1
                update_row(rows[decision.snapshot.account_id], decision, detail)
        return issued

    def _factory_for(self, policy_now: datetime) -> CommandFactory:
        # A policy cut must not execute after its window closes (a gateway back online at
        # night would otherwise receive it): the command expires with the window.
        left_s = (window_closes_at(policy_now, self._book) - policy_now).total_seconds()
        ttl_s = max(1, min(self._settings.command_ttl_s, int(left_s)))
        return replace(self._factory, ttl_s=ttl_s)
