"""Disconnection runs: judge every overdue account, apply the safety limits, record each
account's outcome, then queue the disconnects through the outbox in small transactions (each
command with its account's result), so payments are never held up behind a whole run."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory
from cloud.db.models import DcuQuarantine, DisconnectionRun, DisconnectionRunResult
from cloud.db.session import Database
from cloud.errors import Conflict
from cloud.policy.controls import kill_switch
from cloud.policy.decisions import Decision, Outcome, QuarantineStatus, priority, result_row
from cloud.policy.issuing import CommandIssuer, dcu_loads
from cloud.policy.lease import LeaseClaim, LeaseKeeper
from cloud.policy.quarantine import decide_quarantine
from cloud.policy.rules import RuleBook, account_rules, window_rules
from cloud.policy.safety import SafetyLimits, plan_dcu
from cloud.policy.settings import PolicySettings
from cloud.policy.snapshot import OverdueCriteria, chunks, load_snapshots
from wire import RelayState, new_command_id

log = logging.getLogger(__name__)

RUN_LEASE = "disconnection-run"
# Accounts per transaction. SQLite has one writer, so a payment waits behind the chunk being
# queued: keep it small there. PostgreSQL writers only meet on the chunk's own meter rows, and
# a larger chunk queues a run faster (`switchyard bench disconnection`, confirmed/s: 20,000
# accounts 155 -> 215, 6,000 accounts 154 -> 258); the kill switch is checked before every chunk.
ISSUE_CHUNK_SQLITE = 20
ISSUE_CHUNK_POSTGRESQL = 200
RECORD_CHUNK = 200
YIELD_EVERY = 500


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
        self._settings = settings
        self._book = book
        self._leases = leases
        self._clock = clock
        self._policy_clock = policy_clock or clock
        self._on_commands = on_commands
        self._issuer = CommandIssuer(
            factory, settings, book, clock=clock, policy_clock=self._policy_clock
        )
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
        claim = await self._claim()
        try:
            run_id, pending = await self._evaluate(dry_run, trigger, actor, schedule_slot)
            issued = 0
            size = ISSUE_CHUNK_SQLITE if self._db.is_sqlite else ISSUE_CHUNK_POSTGRESQL
            for chunk in chunks(pending, size):
                issued += await self._issue(run_id, chunk, actor)
            async with self._db.write() as session:
                run = await session.get(DisconnectionRun, run_id)
                assert run is not None
                run.finished_at = self._clock()
        finally:
            await self._leases.release(claim)
        log.info(
            "disconnection run %s (%s%s): %d disconnects queued",
            run_id,
            trigger,
            ", dry run" if dry_run else "",
            issued,
        )
        return run_id

    async def decide_quarantine(
        self, run_id: str, dcu_id: str, *, confirm: bool, actor: str
    ) -> DcuQuarantine:
        """Confirm (check again and disconnect) or reject a quarantined DCU of a run."""
        claim = await self._claim()
        try:
            async with self._db.write() as session:
                quarantine, issued = await decide_quarantine(
                    session,
                    self._issuer,
                    self._book,
                    self._limits,
                    run_id=run_id,
                    dcu_id=dcu_id,
                    confirm=confirm,
                    actor=actor,
                    now=self._clock(),
                    policy_now=self._policy_clock(),
                )
        finally:
            await self._leases.release(claim)
        if issued:
            self._on_commands()
        return quarantine

    async def _claim(self) -> LeaseClaim:
        claim = await self._leases.claim(RUN_LEASE, self._clock(), self._settings.lease_ttl_s)
        if claim is None:
            raise Conflict("another disconnection run is in progress", code="run_in_progress")
        return claim

    async def _evaluate(
        self, dry_run: bool, trigger: str, actor: str | None, schedule_slot: str | None
    ) -> tuple[str, list[Decision]]:
        """Judge and plan on one read snapshot; record the run, then the results in chunks."""
        started_at = self._clock()
        policy_now = self._policy_clock()
        async with self._db.read() as session:
            if schedule_slot is not None and await session.scalar(
                select(DisconnectionRun.run_id).where(
                    DisconnectionRun.schedule_slot == schedule_slot
                )
            ):
                raise Conflict(f"schedule slot {schedule_slot} already ran", code="slot_done")
            decisions = await self._judge(session, policy_now)
            by_dcu: dict[str, list[Decision]] = defaultdict(list)
            for decision in sorted(decisions, key=priority):
                if decision.outcome is Outcome.DISCONNECT:
                    by_dcu[decision.snapshot.dcu_id].append(decision)
            loads = await dcu_loads(session, list(by_dcu), started_at)
        run_id = new_command_id()
        quarantines: list[DcuQuarantine] = []
        for dcu_id, queue in by_dcu.items():
            plan = plan_dcu([d.snapshot.account_id for d in queue], loads[dcu_id], self._limits)
            for decision in queue:
                held = plan.held.get(decision.snapshot.account_id)
                if held is not None:
                    decision.outcome = Outcome.QUARANTINED if plan.quarantined else Outcome.CAPPED
                    decision.rules = (held,)
            if plan.quarantined and not dry_run:
                quarantines.append(
                    DcuQuarantine(
                        run_id=run_id,
                        dcu_id=dcu_id,
                        meter_count=loads[dcu_id].meter_count,
                        would_disconnect=len(queue),
                        status=QuarantineStatus.PENDING.value,
                        created_at=started_at,
                    )
                )
        try:
            async with self._db.write() as session:
                # Locked, so engaging the switch waits for this record and sees the run.
                switch = await kill_switch(session, for_update=True)
                if switch.engaged and not dry_run:
                    raise Conflict(
                        f"the kill switch is engaged ({switch.reason or 'no reason given'})",
                        code="kill_switch_engaged",
                    )
                session.add(
                    DisconnectionRun(
                        run_id=run_id,
                        dry_run=dry_run,
                        trigger=trigger,
                        actor=actor,
                        schedule_slot=schedule_slot,
                        policy_time=policy_now,
                        started_at=started_at,
                        finished_at=started_at if dry_run else None,
                        kill_switch_engaged=switch.engaged,
                    )
                )
                await session.flush()
                session.add_all(quarantines)
        except IntegrityError as exc:
            if schedule_slot is None:
                raise
            # The slot is unique: another process recorded a run for it since we looked.
            raise Conflict(f"schedule slot {schedule_slot} already ran", code="slot_done") from exc
        for chunk in chunks(decisions, RECORD_CHUNK):
            async with self._db.write() as session:
                session.add_all(result_row(run_id, decision) for decision in chunk)
        pending = [] if dry_run else [d for d in decisions if d.outcome is Outcome.DISCONNECT]
        return run_id, sorted(pending, key=priority)

    async def _judge(self, session: AsyncSession, policy_now: datetime) -> list[Decision]:
        closed = window_rules(policy_now, self._book)
        decisions: list[Decision] = []
        criteria: OverdueCriteria = self._issuer.criteria(policy_now)
        for n, snapshot in enumerate(await load_snapshots(session, criteria), start=1):
            if n % YIELD_EVERY == 0:
                # Judging a whole city is CPU work: let acks and payments in between.
                await asyncio.sleep(0)
            if snapshot.desired_relay != RelayState.CONNECTED.value:
                decisions.append(Decision(snapshot, Outcome.ALREADY_DISCONNECTED))
                continue
            rules = account_rules(snapshot, policy_now, self._book) + closed
            decisions.append(
                Decision(snapshot, Outcome.BLOCKED if rules else Outcome.DISCONNECT, rules)
            )
        return decisions

    async def _issue(self, run_id: str, chunk: Sequence[Decision], actor: str | None) -> int:
        async with self._db.write() as session:
            rows = {
                row.account_id: row
                for row in (
                    await session.execute(
                        select(DisconnectionRunResult).where(
                            DisconnectionRunResult.run_id == run_id,
                            DisconnectionRunResult.account_id.in_(
                                [d.snapshot.account_id for d in chunk]
                            ),
                        )
                    )
                ).scalars()
            }
            issued = await self._issuer.issue(session, run_id, chunk, rows, actor)
        if issued:
            # Let the dispatcher publish this chunk while the next one is judged.
            self._on_commands()
        return issued
