"""The disconnection rules at their boundaries, with the clock given to each rule explicitly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from cloud.policy.calendar import load_calendar
from cloud.policy.rules import (
    AccountSnapshot,
    Rule,
    RuleBook,
    account_rules,
    blocking_rules,
    cohort_rule,
    notice_rule,
    window_closes_at,
    window_rules,
)
from cloud.policy.safety import DcuLoad, SafetyLimits, exceeds_share, plan_dcu
from cloud.policy.settings import PolicySettings

IST = ZoneInfo("Asia/Kolkata")
SETTINGS = PolicySettings()
BOOK = RuleBook.from_settings(SETTINGS, load_calendar())
# Tuesday 1 December 2026: a working day, no holiday.
TUESDAY = date(2026, 12, 1)


def ist(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=IST)


def eligible(now: datetime, **changes: object) -> AccountSnapshot:
    snapshot = AccountSnapshot(
        account_id="ACC1",
        meter_id="MTR1",
        dcu_id="DCU01",
        overdue_paise=150_000,
        oldest_overdue_issued_at=now - timedelta(days=40),
        desired_relay="connected",
        control_mode=2,
        installed_on=date(2022, 6, 1),
        gateway_online=True,
        notices_served_at=(now - timedelta(days=20),),
    )
    return replace(snapshot, **changes)  # type: ignore[arg-type]


def test_a_snapshot_that_breaks_no_rule_is_allowed() -> None:
    now = ist(TUESDAY, 11)
    assert blocking_rules(eligible(now), now, BOOK) == []


@pytest.mark.parametrize(
    ("hh", "mm", "ss", "open_"),
    [
        (9, 59, 59, False),
        (10, 0, 0, True),
        (16, 59, 59, True),
        (17, 0, 0, False),
        (23, 0, 0, False),
    ],
)
def test_hours_are_10_00_inclusive_to_17_00_exclusive(
    hh: int, mm: int, ss: int, open_: bool
) -> None:
    now = ist(TUESDAY, hh, mm, ss)
    assert window_rules(now, BOOK) == ([] if open_ else [Rule.OUTSIDE_HOURS])


def test_hours_are_judged_in_india_whatever_zone_the_instant_is_given_in() -> None:
    # 04:30 UTC is 10:00 IST; 04:29 UTC is 09:59 IST.
    assert window_rules(datetime(2026, 12, 1, 4, 30, tzinfo=UTC), BOOK) == []
    assert window_rules(datetime(2026, 12, 1, 4, 29, tzinfo=UTC), BOOK) == [Rule.OUTSIDE_HOURS]


def test_sunday_is_closed() -> None:
    sunday = date(2026, 12, 6)
    assert sunday.weekday() == 6
    assert window_rules(ist(sunday, 11), BOOK) == [Rule.CLOSED_WEEKDAY]


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        (date(2026, 12, 5), False),  # first Saturday
        (date(2026, 12, 12), True),  # second Saturday
        (date(2026, 12, 19), False),  # third Saturday
        (date(2026, 12, 26), False),  # fourth Saturday
        (date(2027, 1, 9), True),  # second Saturday, month starting on a Friday
        (date(2027, 1, 2), False),
    ],
)
def test_only_the_second_saturday_is_closed(day: date, closed: bool) -> None:
    assert day.weekday() == 5
    assert window_rules(ist(day, 11), BOOK) == ([Rule.CLOSED_SATURDAY] if closed else [])


def test_listed_holidays_are_closed_and_the_day_before_is_not() -> None:
    christmas = date(2026, 12, 25)
    assert window_rules(ist(christmas, 11), BOOK) == [Rule.HOLIDAY]
    assert window_rules(ist(christmas - timedelta(days=1), 11), BOOK) == []
    # Gandhi Jayanti 2027 falls on the first Saturday: a holiday, not a closed Saturday.
    assert window_rules(ist(date(2027, 10, 2), 11), BOOK) == [Rule.HOLIDAY]


def test_a_state_holiday_added_by_configuration_closes_the_day() -> None:
    settings = PolicySettings(extra_holidays=[TUESDAY])
    book = RuleBook.from_settings(settings, load_calendar(extra=settings.extra_holidays))
    assert window_rules(ist(TUESDAY, 11), book) == [Rule.HOLIDAY]


def test_every_closing_reason_is_reported_together() -> None:
    # The second Saturday of December 2026, at night.
    assert window_rules(ist(date(2026, 12, 12), 20), BOOK) == [
        Rule.CLOSED_SATURDAY,
        Rule.OUTSIDE_HOURS,
    ]


@pytest.mark.parametrize(
    ("served_ago", "expected"),
    [
        (timedelta(days=14), Rule.NOTICE_PERIOD_RUNNING),
        (timedelta(days=15) - timedelta(seconds=1), Rule.NOTICE_PERIOD_RUNNING),
        (timedelta(days=15), None),
        (timedelta(days=16), None),
    ],
)
def test_notice_must_be_served_at_least_15_days_earlier(
    served_ago: timedelta, expected: Rule | None
) -> None:
    now = ist(TUESDAY, 11)
    snapshot = eligible(now, notices_served_at=(now - served_ago,))
    assert notice_rule(snapshot, now, 15) is expected


def test_no_notice_or_a_notice_for_older_dues_is_missing() -> None:
    now = ist(TUESDAY, 11)
    assert notice_rule(eligible(now, notices_served_at=()), now, 15) is Rule.NOTICE_MISSING
    # Served 50 days ago, before the oldest unpaid bill (40 days ago) was even issued.
    old = eligible(now, notices_served_at=(now - timedelta(days=50),))
    assert notice_rule(old, now, 15) is Rule.NOTICE_MISSING


def test_the_earliest_valid_notice_starts_the_period() -> None:
    now = ist(TUESDAY, 11)
    snapshot = eligible(now, notices_served_at=(now - timedelta(days=2), now - timedelta(days=16)))
    assert notice_rule(snapshot, now, 15) is None


@pytest.mark.parametrize(
    ("installed_on", "in_cohort"),
    [
        (date(2019, 12, 31), False),
        (date(2020, 1, 1), True),
        (date(2024, 12, 31), True),
        (date(2025, 1, 1), False),
        (None, False),
    ],
)
def test_cohort_is_meters_installed_2020_to_2024(
    installed_on: date | None, in_cohort: bool
) -> None:
    now = ist(TUESDAY, 11)
    snapshot = eligible(now, installed_on=installed_on)
    assert cohort_rule(snapshot, SETTINGS.cohorts) is (
        None if in_cohort else Rule.COHORT_NOT_ENABLED
    )


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"protections": ("life_support",)}, Rule.PROTECTED_CONSUMER),
        ({"protections": ("essential_service",)}, Rule.PROTECTED_CONSUMER),
        ({"open_disputes": ("dispute",)}, Rule.OPEN_DISPUTE),
        ({"open_disputes": ("payment_under_protest",)}, Rule.OPEN_DISPUTE),
        ({"control_mode": 0}, Rule.METER_CANNOT_DISCONNECT),
        ({"gateway_online": False}, Rule.GATEWAY_OFFLINE),
    ],
)
def test_each_account_rule_blocks_on_its_own(changes: dict[str, object], rule: Rule) -> None:
    now = ist(TUESDAY, 11)
    assert account_rules(eligible(now, **changes), now, BOOK) == [rule]


def test_mode_1_meters_can_be_disconnected() -> None:
    now = ist(TUESDAY, 11)
    assert account_rules(eligible(now, control_mode=1), now, BOOK) == []


def test_all_blocking_rules_are_listed_in_precedence_order() -> None:
    now = ist(date(2026, 12, 6), 9)  # Sunday morning
    snapshot = eligible(now, protections=("life_support",), control_mode=0, notices_served_at=())
    assert blocking_rules(snapshot, now, BOOK) == [
        Rule.PROTECTED_CONSUMER,
        Rule.METER_CANNOT_DISCONNECT,
        Rule.NOTICE_MISSING,
        Rule.CLOSED_WEEKDAY,
        Rule.OUTSIDE_HOURS,
    ]


def test_window_closes_at_17_00_local() -> None:
    assert window_closes_at(ist(TUESDAY, 16, 30), BOOK) == ist(TUESDAY, 17)


def test_share_limit_allows_exactly_20_percent_and_quarantines_above() -> None:
    assert not exceeds_share(10, 50, 20)
    assert exceeds_share(11, 50, 20)
    assert exceeds_share(1, 4, 20)


def test_caps_per_run_and_per_hour_hold_back_the_rest_in_order() -> None:
    limits = SafetyLimits(max_share_percent=100, max_per_run=3, max_per_hour=5)
    queue = ["A", "B", "C", "D"]
    plan = plan_dcu(queue, DcuLoad(meter_count=10, issued_last_hour=0), limits)
    assert (plan.disconnect, plan.held) == (("A", "B", "C"), {"D": Rule.DCU_RUN_CAP})
    plan = plan_dcu(queue, DcuLoad(meter_count=10, issued_last_hour=4), limits)
    assert plan.disconnect == ("A",)
    assert set(plan.held.values()) == {Rule.DCU_HOURLY_CAP}
    quarantined = plan_dcu(
        queue, DcuLoad(meter_count=10, issued_last_hour=0), SafetyLimits(20, 9, 9)
    )
    assert quarantined.quarantined and quarantined.disconnect == ()
    assert set(quarantined.held.values()) == {Rule.DCU_SHARE_EXCEEDED}


def test_settings_refuse_a_naive_clock_and_an_inverted_window() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        PolicySettings(clock=datetime(2026, 12, 1, 11, 0))
    with pytest.raises(ValueError, match="window_start"):
        PolicySettings(window_start=time(17, 0), window_end=time(10, 0))
    with pytest.raises(ValueError, match="time zone"):
        PolicySettings(timezone="Mars/Olympus")


def test_shipped_calendar_covers_2026_and_2027_and_names_its_source() -> None:
    calendar = load_calendar()
    assert calendar.years == [2026, 2027]
    assert "Department of Personnel and Training" in calendar.source
    assert "state" in calendar.note
    assert calendar.name_of(date(2026, 1, 26)) == "Republic Day"
    assert len([d for d in calendar.holidays if d.year == 2026]) == 17
