"""Disconnection runs: judge every overdue account, apply the safety limits, and queue the
disconnects through the outbox in the same transaction that records each account's outcome."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory, RelayRequest, lock_meter, request_relay
from cloud.commands.lifecycle import Origin
from cloud.db.models import (
    Command,
    DcuQuarantine,
    DisconnectionRun,
    DisconnectionRunResult,
    Meter,
)
from cloud.db.session import Database
from cloud.errors import Conflict, NotFound
from cloud.policy.controls import kill_switch
from cloud.policy.decisions import (
    Decision,
    Outcome,
    QuarantineStatus,
    priority,
    result_row,
    update_row,
)
from cloud.policy.lease import LeaseKeeper
from cloud.policy.rules import (
    RuleBook,
    account_rules,
    window_closes_at,
    window_rules,
)
from cloud.policy.safety import DcuLoad, SafetyLimits, plan_dcu
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import OverdueCriteria, load_snapshots
from wire import Action, RelayState, new_command_id

log = logging.getLogger(__name__)

RUN_LEASE = "disconnection-run"


class DisconnectionRunner:
    """Runs the policy; one run at a time across every cloud process (a database lease)."""

    def __init__(
        self,
        db: Database,
        factory: CommandFactory,
        settings: PolicySettings,
        book: RuleBook,
        leases: LeaseKeeper,
        *,
        clock: Clock = utcnow,
        policy_clock: Clock | None = None,
        on_commands: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._factory = factory
        self._settings = settings
        self._book = book
        self._leases = leases
        self._clock = clock
        self._policy_clock = policy_clock or clock
        self._on_commands = on_commands
        self._limits = SafetyLimits(
            settings.max_dcu_share_percent,
            settings.max_per_dcu_per_run,
            settings.max_per_dcu_per_hour,
        )

    async def run(
        self,
        *,
        dry_run: bool,
        trigger: str,
        actor: str | None,
        schedule_slot: str | None = None,
    ) -> str:
        """Evaluate every overdue account now; returns the run id. 409 if one is running."""
        claim = await self._leases.claim(RUN_LEASE, self._clock(), self._settings.lease_ttl_s)
        if claim is None:
            raise Conflict("another disconnection run is in progress", code="run_in_progress")
        try:
            async with self._db.write() as session:
                run_id, issued = await self._run(session, dry_run, trigger, actor, schedule_slot)
        finally:
            await self._leases.release(claim)
        if issued:
            self._on_commands()
        return run_id

    async def decide_quarantine(
        self, run_id: str, dcu_id: str, *, confirm: bool, actor: str
    ) -> DcuQuarantine:
        """Confirm (re-check and disconnect) or reject a quarantined DCU of a run."""
        claim = await self._leases.claim(RUN_LEASE, self._clock(), self._settings.lease_ttl_s)
        if claim is None:
            raise Conflict("a disconnection run is in progress", code="run_in_progress")
        try:
            async with self._db.write() as session:
                quarantine, issued = await self._decide(session, run_id, dcu_id, confirm, actor)
        finally:
            await self._leases.release(claim)
        if issued:
            self._on_commands()
        return quarantine

    async def _run(
        self,
        session: AsyncSession,
        dry_run: bool,
        trigger: str,
        actor: str | None,
        schedule_slot: str | None,
    ) -> tuple[str, int]:
        started_at = self._clock()
        policy_now = self._policy_clock()
        # Locked, so engaging the switch waits for this run and then withdraws its commands.
        switch = await kill_switch(session, for_update=True)
        if switch.engaged and not dry_run:
            raise Conflict(
                f"the kill switch is engaged ({switch.reason or 'no reason given'})",
                code="kill_switch_engaged",
            )
        if schedule_slot is not None and await session.scalar(
            select(DisconnectionRun.run_id).where(DisconnectionRun.schedule_slot == schedule_slot)
        ):
            raise Conflict(f"schedule slot {schedule_slot} already ran", code="slot_done")
        run = DisconnectionRun(
            run_id=new_command_id(),
            dry_run=dry_run,
            trigger=trigger,
            actor=actor,
            schedule_slot=schedule_slot,
            policy_time=policy_now,
            started_at=started_at,
            finished_at=started_at,
            kill_switch_engaged=switch.engaged,
        )
        session.add(run)
        await session.flush()
        criteria = self._criteria(policy_now)
        decisions = await self._judge(session, policy_now, criteria)
        eligible = [d for d in decisions if d.outcome is Outcome.DISCONNECT]
        by_dcu: dict[str, list[Decision]] = defaultdict(list)
        for decision in sorted(eligible, key=priority):
            by_dcu[decision.snapshot.dcu_id].append(decision)
        loads = await self._dcu_loads(session, list(by_dcu), started_at)
        issued = 0
        for dcu_id, queue in by_dcu.items():
            plan = plan_dcu([d.snapshot.account_id for d in queue], loads[dcu_id], self._limits)
            if plan.quarantined and not dry_run:
                session.add(
                    DcuQuarantine(
                        run_id=run.run_id,
                        dcu_id=dcu_id,
                        meter_count=loads[dcu_id].meter_count,
                        would_disconnect=len(queue),
                        status=QuarantineStatus.PENDING.value,
                        created_at=started_at,
                    )
                )
            for decision in queue:
                held = plan.held.get(decision.snapshot.account_id)
                if held is not None:
                    decision.outcome = Outcome.QUARANTINED if plan.quarantined else Outcome.CAPPED
                    decision.rules = (held,)
                elif not dry_run:
                    issued += await self._issue(session, run.run_id, decision, criteria, actor)
        for decision in decisions:
            session.add(result_row(run.run_id, decision))
        run.finished_at = self._clock()
        log.info(
            "disconnection run %s (%s%s): %d overdue, %d disconnects queued",
            run.run_id,
            trigger,
            ", dry run" if dry_run else "",
            len(decisions),
            issued,
        )
        return run.run_id, issued

    async def _judge(
        self, session: AsyncSession, policy_now: datetime, criteria: OverdueCriteria
    ) -> list[Decision]:
        closed = window_rules(policy_now, self._book)
        decisions: list[Decision] = []
        for snapshot in await load_snapshots(session, criteria):
            if snapshot.desired_relay != RelayState.CONNECTED.value:
                decisions.append(Decision(snapshot, Outcome.ALREADY_DISCONNECTED))
                continue
            rules = account_rules(snapshot, policy_now, self._book) + closed
            outcome = Outcome.BLOCKED if rules else Outcome.DISCONNECT
            decisions.append(Decision(snapshot, outcome, rules))
        return decisions

    async def _issue(
        self,
        session: AsyncSession,
        run_id: str,
        decision: Decision,
        criteria: OverdueCriteria,
        actor: str | None,
    ) -> int:
        meter = await lock_meter(session, decision.snapshot.meter_id)
        # Judge again under the meter's lock: a payment (or a protection, a dispute) committed
        # since the snapshot was read wins over this run.
        fresh = await load_snapshots(session, criteria, [decision.snapshot.account_id])
        if meter is None or meter.desired_relay != RelayState.CONNECTED.value:
            decision.outcome = Outcome.ALREADY_DISCONNECTED
            return 0
        if not fresh:
            decision.outcome = Outcome.NOT_OVERDUE
            return 0
        policy_now = self._policy_clock()
        rules = account_rules(fresh[0], policy_now, self._book) + window_rules(
            policy_now, self._book
        )
        if rules:
            decision.outcome, decision.rules = Outcome.BLOCKED, rules
            return 0
        now = self._clock()
        request = RelayRequest(
            meter_id=meter.meter_id,
            action=Action.DISCONNECT,
            reason=f"disconnection run {run_id}: {fresh[0].overdue_paise} paise overdue",
            origin=Origin.POLICY,
            requested_at=now,
            actor=actor,
        )
        command = await request_relay(session, meter, request, self._run_factory(), now)
        decision.command_id = command.command_id
        return 1

    def _run_factory(self) -> CommandFactory:
        # A policy cut must not execute after its window closes (a gateway back online at
        # night would otherwise receive it): the command expires with the window.
        policy_now = self._policy_clock()
        left_s = (window_closes_at(policy_now, self._book) - policy_now).total_seconds()
        ttl_s = max(1, min(self._settings.command_ttl_s, int(left_s)))
        return replace(self._factory, ttl_s=ttl_s)

    def _criteria(self, policy_now: datetime) -> OverdueCriteria:
        return OverdueCriteria(
            today=self._book.local(policy_now).date(),
            grace_days=self._settings.grace_days,
            min_overdue_paise=self._settings.min_overdue_paise,
        )

    async def _dcu_loads(
        self, session: AsyncSession, dcu_ids: list[str], now: datetime
    ) -> dict[str, DcuLoad]:
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

    async def _decide(
        self, session: AsyncSession, run_id: str, dcu_id: str, confirm: bool, actor: str
    ) -> tuple[DcuQuarantine, int]:
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
        now = self._clock()
        quarantine.decided_at = now
        quarantine.decided_by = actor
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
        if not confirm:
            quarantine.status = QuarantineStatus.REJECTED.value
            for row in held:
                row.detail = f"quarantine rejected by {actor}"
            return quarantine, 0
        switch = await kill_switch(session, for_update=True)
        if switch.engaged:
            raise Conflict("the kill switch is engaged", code="kill_switch_engaged")
        quarantine.status = QuarantineStatus.CONFIRMED.value
        issued = await self._recheck_and_issue(session, run_id, dcu_id, held, actor)
        return quarantine, issued

    async def _recheck_and_issue(
        self,
        session: AsyncSession,
        run_id: str,
        dcu_id: str,
        held: list[DisconnectionRunResult],
        actor: str,
    ) -> int:
        # The operator confirmed the share, not the rules: they are checked again, now.
        policy_now = self._policy_clock()
        criteria = self._criteria(policy_now)
        snapshots = {
            s.account_id: s
            for s in await load_snapshots(session, criteria, [row.account_id for row in held])
        }
        closed = window_rules(policy_now, self._book)
        ready: list[Decision] = []
        rows = {row.account_id: row for row in held}
        for row in held:
            snapshot = snapshots.get(row.account_id)
            if snapshot is None:
                row.outcome, row.rule, row.rules = Outcome.NOT_OVERDUE.value, None, ""
                row.detail = f"re-checked on confirm by {actor}"
                continue
            if snapshot.desired_relay != RelayState.CONNECTED.value:
                decision = Decision(snapshot, Outcome.ALREADY_DISCONNECTED)
            else:
                rules = account_rules(snapshot, policy_now, self._book) + closed
                decision = Decision(snapshot, Outcome.BLOCKED if rules else Outcome.DISCONNECT)
                decision.rules = rules
            if decision.outcome is Outcome.DISCONNECT:
                ready.append(decision)
            else:
                update_row(row, decision, f"re-checked on confirm by {actor}")
        ready.sort(key=priority)
        load = (await self._dcu_loads(session, [dcu_id], self._clock()))[dcu_id]
        # The share limit was what the operator overrode; the caps still hold.
        limits = replace(self._limits, max_share_percent=100)
        plan = plan_dcu([d.snapshot.account_id for d in ready], load, limits)
        issued = 0
        for decision in ready:
            cap = plan.held.get(decision.snapshot.account_id)
            if cap is not None:
                decision.outcome, decision.rules = Outcome.CAPPED, (cap,)
            else:
                issued += await self._issue(session, run_id, decision, criteria, actor)
            update_row(rows[decision.snapshot.account_id], decision, f"confirmed by {actor}")
        return issued
