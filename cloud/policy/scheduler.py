"""The policy scheduler: at each configured local time, inside the allowed window only, one
disconnection run — never two at once and never twice for one slot, across every cloud process."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from cloud.clock import Clock, utcnow
from cloud.errors import Conflict
from cloud.metrics import CloudMetrics
from cloud.policy.notices import NoticeServer
from cloud.policy.rules import RuleBook, window_rules
from cloud.policy.runs import DisconnectionRunner
from cloud.policy.settings import PolicySettings

log = logging.getLogger(__name__)


def due_slot(now: datetime, settings: PolicySettings, book: RuleBook) -> str | None:
    """The latest scheduled local time already reached today, as a slot key like
    '2026-12-01T10:30' — or None before the first one."""
    local = book.local(now)
    reached = [t for t in settings.schedule if t <= local.time().replace(tzinfo=None)]
    if not reached:
        return None
    return f"{local.date().isoformat()}T{max(reached):%H:%M}"


class PolicyScheduler:
    """Wakes every `scheduler_tick_s`; inside the window it sends notices and runs due slots."""

    def __init__(
        self,
        runner: DisconnectionRunner,
        notices: NoticeServer,
        settings: PolicySettings,
        book: RuleBook,
        metrics: CloudMetrics,
        *,
        policy_clock: Clock = utcnow,
    ) -> None:
        self._runner = runner
        self._notices = notices
        self._settings = settings
        self._book = book
        self._metrics = metrics
        self._policy_clock = policy_clock

    async def run(self) -> None:
        """Tick until cancelled; a failed tick is logged, counted and retried next tick."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("policy scheduler tick failed")
                self._metrics.loop_errors.labels("policy-scheduler").inc()
            await asyncio.sleep(self._settings.scheduler_tick_s)

    async def tick(self) -> str | None:
        """One tick; returns the id of the run it started, if any."""
        now = self._policy_clock()
        closed = window_rules(now, self._book)
        if closed:
            return None
        sent = await self._notices.serve()
        if sent.reminders or sent.notices:
            log.info("sent %d reminders and %d notices", sent.reminders, sent.notices)
        slot = due_slot(now, self._settings, self._book)
        if slot is None:
            return None
        try:
            return await self._runner.run(
                dry_run=False, trigger="scheduler", actor=None, schedule_slot=slot
            )
        except Conflict as exc:
            # Another process holds the run lease or ran this slot, or the kill switch is on.
            log.debug("scheduled run for %s skipped: %s", slot, exc.message)
            return None
