"""The disconnection rules: small pure functions over a snapshot of one account and a clock.

Each rule returns the stable name of what blocks the disconnection, or None when it allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from cloud.policy.calendar import HolidayCalendar
from cloud.policy.settings import Cohort, PolicySettings


class Rule(StrEnum):
    """Stable names of everything that can hold a disconnection back, in precedence order."""

    PROTECTED_CONSUMER = "protected_consumer"
    OPEN_DISPUTE = "open_dispute"
    COHORT_NOT_ENABLED = "cohort_not_enabled"
    METER_CANNOT_DISCONNECT = "meter_cannot_disconnect"
    NOTICE_MISSING = "notice_missing"
    NOTICE_PERIOD_RUNNING = "notice_period_running"
    GATEWAY_OFFLINE = "gateway_offline"
    HOLIDAY = "holiday"
    CLOSED_WEEKDAY = "closed_weekday"
    CLOSED_SATURDAY = "closed_saturday"
    OUTSIDE_HOURS = "outside_hours"
    # Safety limits, applied by the run after the rules.
    DCU_SHARE_EXCEEDED = "dcu_share_exceeded"
    DCU_RUN_CAP = "dcu_run_cap"
    DCU_HOURLY_CAP = "dcu_hourly_cap"
    KILL_SWITCH = "kill_switch"


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the rules need to know about one overdue account, read in one transaction."""

    account_id: str
    meter_id: str
    dcu_id: str
    overdue_paise: int
    # When the oldest overdue bill was issued: a notice served before it is for older dues.
    oldest_overdue_issued_at: datetime | None
    desired_relay: str
    control_mode: int
    installed_on: date | None
    gateway_online: bool
    protections: tuple[str, ...] = ()
    open_disputes: tuple[str, ...] = ()
    notices_served_at: tuple[datetime, ...] = ()
    oldest_overdue_bill: str | None = None


@dataclass(frozen=True)
class RuleBook:
    """The configured parameters of every rule, built once from settings."""

    zone: ZoneInfo
    notice_days: int
    window_start: time
    window_end: time
    allowed_weekdays: frozenset[int]
    closed_saturdays: frozenset[int]
    calendar: HolidayCalendar
    cohorts: tuple[Cohort, ...]

    @classmethod
    def from_settings(cls, settings: PolicySettings, calendar: HolidayCalendar) -> RuleBook:
        """The rules as configured."""
        return cls(
            zone=settings.zone,
            notice_days=settings.notice_days,
            window_start=settings.window_start,
            window_end=settings.window_end,
            allowed_weekdays=frozenset(settings.allowed_weekdays),
            closed_saturdays=frozenset(settings.closed_saturdays),
            calendar=calendar,
            cohorts=tuple(settings.cohorts),
        )

    def local(self, now: datetime) -> datetime:
        """An instant in the policy's time zone."""
        return now.astimezone(self.zone)


def protected_rule(snapshot: AccountSnapshot) -> Rule | None:
    """Life-support and essential-service consumers are never disconnected."""
    return Rule.PROTECTED_CONSUMER if snapshot.protections else None


def dispute_rule(snapshot: AccountSnapshot) -> Rule | None:
    """An open dispute or a payment under protest holds the disconnection."""
    return Rule.OPEN_DISPUTE if snapshot.open_disputes else None


def cohort_rule(snapshot: AccountSnapshot, cohorts: Sequence[Cohort]) -> Rule | None:
    """Only meters installed within an enabled cohort (an unknown date is in none)."""
    installed = snapshot.installed_on
    if installed is not None and any(c.contains(installed) for c in cohorts):
        return None
    return Rule.COHORT_NOT_ENABLED


def capability_rule(snapshot: AccountSnapshot) -> Rule | None:
    """A meter in control mode 0 has no disconnector the head-end may operate."""
    return Rule.METER_CANNOT_DISCONNECT if snapshot.control_mode == 0 else None


def notice_rule(snapshot: AccountSnapshot, now: datetime, notice_days: int) -> Rule | None:
    """A notice for these dues must have been served at least `notice_days` days before now."""
    since = snapshot.oldest_overdue_issued_at
    valid = [
        served
        for served in snapshot.notices_served_at
        if served <= now and (since is None or served >= since)
    ]
    if not valid:
        return Rule.NOTICE_MISSING
    if now - min(valid) < timedelta(days=notice_days):
        return Rule.NOTICE_PERIOD_RUNNING
    return None


def gateway_rule(snapshot: AccountSnapshot) -> Rule | None:
    """The meter's gateway must be online, or the command would wait and run late."""
    return None if snapshot.gateway_online else Rule.GATEWAY_OFFLINE


def nth_weekday_of_month(day: date) -> int:
    """1 for the first Saturday (or any weekday) of its month, 2 for the second, and so on."""
    return (day.day - 1) // 7 + 1


def window_rules(now: datetime, book: RuleBook) -> list[Rule]:
    """Everything about this instant that closes the window: holiday, day, hour."""
    local = book.local(now)
    today = local.date()
    blocked: list[Rule] = []
    if book.calendar.name_of(today) is not None:
        blocked.append(Rule.HOLIDAY)
    if today.weekday() not in book.allowed_weekdays:
        blocked.append(Rule.CLOSED_WEEKDAY)
    if today.weekday() == 5 and nth_weekday_of_month(today) in book.closed_saturdays:
        blocked.append(Rule.CLOSED_SATURDAY)
    if not book.window_start <= local.time().replace(tzinfo=None) < book.window_end:
        blocked.append(Rule.OUTSIDE_HOURS)
    return blocked


def window_closes_at(now: datetime, book: RuleBook) -> datetime:
    """When today's window closes, as an aware instant."""
    local = book.local(now)
    return datetime.combine(local.date(), book.window_end, tzinfo=book.zone)


def account_rules(snapshot: AccountSnapshot, now: datetime, book: RuleBook) -> list[Rule]:
    """Every account-level rule that blocks this account, in precedence order."""
    checks = (
        protected_rule(snapshot),
        dispute_rule(snapshot),
        cohort_rule(snapshot, book.cohorts),
        capability_rule(snapshot),
        notice_rule(snapshot, now, book.notice_days),
        gateway_rule(snapshot),
    )
    return [rule for rule in checks if rule is not None]


def blocking_rules(snapshot: AccountSnapshot, now: datetime, book: RuleBook) -> list[Rule]:
    """All rules that hold this account back now; empty means every rule allows it."""
    return account_rules(snapshot, now, book) + window_rules(now, book)
