"""The outbox dispatcher: claims due commands, publishes them signed at QoS 1, republishes on
ack timeout with backoff, and ends commands that time out or expire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.clock import Clock, utcnow
from cloud.commands.acks import FinalHook
from cloud.commands.lifecycle import (
    ACTIVE_STATES,
    IN_FLIGHT_STATES,
    CommandState,
    record_transition,
)
from cloud.db.models import Command, Gateway
from cloud.db.session import Database
from cloud.errors import BrokerUnavailable
from cloud.metrics import CloudMetrics
from wire import Command as WireCommand
from wire import CommandSigner, decode, encode
from wire.topics import command_topic

log = logging.getLogger(__name__)


class CommandPublisher(Protocol):
    """What the dispatcher needs from MQTT: publish QoS 1 and learn of the PUBACK."""

    @property
    def connected(self) -> bool: ...

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]: ...


@dataclass(frozen=True)
class DispatchPolicy:
    """Timing of publishes and retries."""

    ack_timeout_s: float
    execution_timeout_s: float
    max_attempts: int
    backoff_cap_s: float
    batch: int
    poll_s: float

    def retry_delay_s(self, attempts: int) -> float:
        """Capped exponential backoff with jitter after the given number of attempts."""
        base_s: float = min(self.ack_timeout_s * 2.0 ** max(0, attempts - 1), self.backoff_cap_s)
        return base_s * (0.8 + 0.4 * random.random())


@dataclass(frozen=True)
class Outgoing:
    command_id: str
    topic: str
    payload: bytes
    expiry_s: int


class Dispatcher:
    """Publishes the outbox; safe to run in several processes (rows are claimed)."""

    def __init__(
        self,
        db: Database,
        publisher: CommandPublisher,
        policy: DispatchPolicy,
        metrics: CloudMetrics,
        clock: Clock = utcnow,
        *,
        signer: CommandSigner | None = None,
        on_final: Sequence[FinalHook] = (),
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        # Commands signed with an older key are signed again with the current one when they
        # are (re)published, so a key can be retired at the gateways once the outbox has moved.
        self._signer = signer
        self._wake = asyncio.Event()
        self._on_final = list(on_final)

    def add_final_hook(self, hook: FinalHook) -> None:
        """Also call `hook`, in the same transaction, when this dispatcher ends a command."""
        self._on_final.append(hook)

    def wake(self) -> None:
        """Tell the dispatcher there is new work (called after a commit)."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled; a failed round is logged, counted and retried."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._policy.poll_s)
            self._wake.clear()
            if not self._publisher.connected:
                continue
            try:
                published = await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch round failed")
                self._metrics.loop_errors.labels("dispatcher").inc()
                await asyncio.sleep(1.0)
                continue
            if published >= self._policy.batch:
                self._wake.set()

    async def claim_new(
        self, session: AsyncSession, commands: Sequence[Command], now: datetime
    ) -> list[Outgoing]:
        """Claim commands created in this transaction whose gateway is online.

        The caller publishes them with `publish` right after its commit, sparing a dispatcher
        round; should it crash in between, they are SENT with a retry time and get republished.
        """
        if not commands or not self._publisher.connected:
            return []
        dcu_ids = {command.dcu_id for command in commands}
        online = set(
            (
                await session.scalars(
                    select(Gateway.dcu_id).where(
                        Gateway.dcu_id.in_(dcu_ids), Gateway.online.is_(True)
                    )
                )
            ).all()
        )
        claimed = [
            c for c in commands if c.dcu_id in online and c.state == CommandState.QUEUED.value
        ]
        for command in claimed:
            record_transition(session, command, CommandState.SENT, now, "published")
            self._metrics.command_transitions.labels(CommandState.SENT.value).inc()
        return [self._mark_attempt(command, now) for command in claimed]

    def claim_created(self, command: Command, now: datetime) -> Outgoing | None:
        """Claim a command being created (not yet in the session) whose gateway is online.

        The fast path of `claim_new` for callers that write the row themselves; None when the
        broker is not connected, and the command stays QUEUED for the dispatcher.
        """
        if not self._publisher.connected:
            return None
        command.state = CommandState.SENT.value
        self._metrics.command_transitions.labels(CommandState.SENT.value).inc()
        return self._mark_attempt(command, now)

    async def publish(self, outgoing: Sequence[Outgoing]) -> None:
        """Publish claimed commands; one the broker cannot take now waits for its retry time."""
        for item in outgoing:
            try:
                await self._publisher.publish(item.topic, item.payload, expiry_s=item.expiry_s)
            except BrokerUnavailable as exc:
                log.warning("publish of %s deferred: %s", item.command_id, exc)
                return
            self._metrics.commands_published.inc()

    async def dispatch_once(self) -> int:
        """One round: claim, mark and publish; returns how many publishes were made."""
        now = self._clock()
        async with self._db.write() as session:
            await self._expire(session, now)
            outgoing = await self._claim_queued(session, now)
            outgoing += await self._retry_due(session, now, self._policy.batch - len(outgoing))
        await self.publish(outgoing)
        return len(outgoing)

    async def _claim_queued(self, session: AsyncSession, now: datetime) -> list[Outgoing]:
        query = (
            select(Command)
            .join(Gateway, Gateway.dcu_id == Command.dcu_id)
            .where(
                Command.state == CommandState.QUEUED.value,
                Gateway.online.is_(True),
                or_(Command.next_attempt_at.is_(None), Command.next_attempt_at <= now),
            )
            .order_by(Command.created_at)
            .limit(self._policy.batch)
            .with_for_update(skip_locked=True, of=Command)
        )
        commands = list((await session.execute(query)).scalars())
        for command in commands:
            record_transition(session, command, CommandState.SENT, now, "published")
            self._metrics.command_transitions.labels(CommandState.SENT.value).inc()
        return [self._mark_attempt(command, now) for command in commands]

    async def _retry_due(self, session: AsyncSession, now: datetime, limit: int) -> list[Outgoing]:
        if limit <= 0:
            return []
        query = (
            select(Command)
            .join(Gateway, Gateway.dcu_id == Command.dcu_id)
            .where(
                Command.state.in_([s.value for s in IN_FLIGHT_STATES]),
                Command.next_attempt_at.is_not(None),
                Command.next_attempt_at <= now,
                Gateway.online.is_(True),
            )
            .order_by(Command.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Command)
        )
        outgoing: list[Outgoing] = []
        ended: list[Command] = []
        for command in (await session.execute(query)).scalars():
            if command.attempts >= self._policy.max_attempts:
                record_transition(
                    session,
                    command,
                    CommandState.TIMED_OUT,
                    now,
                    f"no final ack after {command.attempts} attempts",
                )
                command.next_attempt_at = None
                self._metrics.command_transitions.labels(CommandState.TIMED_OUT.value).inc()
                ended.append(command)
                continue
            record_transition(
                session,
                command,
                CommandState(command.state),
                now,
                f"republished, attempt {command.attempts + 1}",
            )
            self._metrics.command_retries.inc()
            outgoing.append(self._mark_attempt(command, now))
        await self._run_final_hooks(session, ended)
        return outgoing

    async def _run_final_hooks(self, session: AsyncSession, ended: Sequence[Command]) -> None:
        if ended:
            for hook in self._on_final:
                await hook(session, ended)

    async def _expire(self, session: AsyncSession, now: datetime) -> None:
        query = (
            select(Command)
            .where(
                Command.state.in_([s.value for s in ACTIVE_STATES]),
                Command.expires_at <= now,
            )
            .limit(self._policy.batch)
            .with_for_update(skip_locked=True)
        )
        expired = list((await session.execute(query)).scalars())
        for command in expired:
            record_transition(session, command, CommandState.EXPIRED, now, "expired in the cloud")
            command.next_attempt_at = None
            self._metrics.command_transitions.labels(CommandState.EXPIRED.value).inc()
        await self._run_final_hooks(session, expired)

    def _mark_attempt(self, command: Command, now: datetime) -> Outgoing:
        command.attempts += 1
        delay_s = self._policy.retry_delay_s(command.attempts)
        command.next_attempt_at = now + timedelta(seconds=delay_s)
        expiry_s = max(1, int((command.expires_at - now).total_seconds()))
        if self._signer is not None:
            signed = decode(WireCommand, command.payload)
            if signed.key_id != self._signer.key_id:
                command.payload = encode(self._signer.resign(signed)).decode()
        return Outgoing(
            command.command_id,
            command_topic(command.dcu_id, command.meter_id),
            command.payload.encode(),
            expiry_s,
        )
