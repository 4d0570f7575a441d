"""The policy's parts for one cloud process, built once from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cloud.clock import Clock, utcnow
from cloud.commands.desired import CommandFactory
from cloud.db.session import Database
from cloud.metrics import CloudMetrics
from cloud.notify.notifier import RecordingNotifier
from cloud.policy.calendar import load_calendar
from cloud.policy.hooks import CommandOutcomeHooks
from cloud.policy.lease import LeaseKeeper
from cloud.policy.notices import NoticeServer
from cloud.policy.rules import RuleBook
from cloud.policy.runs import DisconnectionRunner
from cloud.policy.scheduler import PolicyScheduler
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)


class PolicyServices:
    """Rules, runner, notices, scheduler and command-outcome hooks of the policy."""

    def __init__(
        self,
        settings: CloudSettings,
        db: Database,
        factory: CommandFactory,
        metrics: CloudMetrics,
        on_commands: Callable[[], None],
    ) -> None:
        policy = self.settings = settings.policy
        self.calendar = load_calendar(policy.holidays_file, policy.extra_holidays)
        self.book = RuleBook.from_settings(policy, self.calendar)
        self.policy_clock = _policy_clock(settings)
        self.notifier = RecordingNotifier()
        self.runner = DisconnectionRunner(
            db,
            factory,
            policy,
            self.book,
            LeaseKeeper(db, settings.instance_id),
            policy_clock=self.policy_clock,
            on_commands=on_commands,
        )
        self.notices = NoticeServer(
            db, self.notifier, policy, self.book, policy_clock=self.policy_clock
        )
        self.scheduler = PolicyScheduler(
            self.runner,
            self.notices,
            policy,
            self.book,
            metrics,
            policy_clock=self.policy_clock,
        )
        self.hooks = CommandOutcomeHooks(factory, self.notifier, settings.reconnection_fee_paise)

    @property
    def scheduler_enabled(self) -> bool:
        """Whether a schedule is configured (an empty schedule means manual runs only)."""
        return bool(self.settings.schedule)


def _policy_clock(settings: CloudSettings) -> Clock:
    fixed = settings.policy.clock
    if fixed is None:
        return utcnow
    log.warning("policy clock fixed at %s: rules ignore the real time (tests/demos only)", fixed)
    return lambda: fixed
