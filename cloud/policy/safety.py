"""Safety limits on what a run may switch: the share of one DCU, and caps per run and per hour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cloud.policy.rules import Rule


@dataclass(frozen=True)
class SafetyLimits:
    """The configured limits, per DCU."""

    max_share_percent: int
    max_per_run: int
    max_per_hour: int


@dataclass(frozen=True)
class DcuLoad:
    """What the DCU has: its meters, and the policy disconnects issued on it in the last hour."""

    meter_count: int
    issued_last_hour: int


@dataclass(frozen=True)
class DcuPlan:
    """For one DCU: disconnect these, hold those back (and why), or quarantine them all."""

    quarantined: bool
    disconnect: tuple[str, ...] = ()
    held: dict[str, Rule] = field(default_factory=dict)


def exceeds_share(would_disconnect: int, meter_count: int, max_share_percent: int) -> bool:
    """Whether cutting this many of the DCU's meters is more than the allowed share."""
    # Integer arithmetic: exactly 20 % of the meters is still allowed at a 20 % limit.
    return would_disconnect * 100 > max_share_percent * max(meter_count, 1)


def plan_dcu(
    eligible: Sequence[str], load: DcuLoad, limits: SafetyLimits, *, already_in_run: int = 0
) -> DcuPlan:
    """Apply the limits to one DCU's eligible accounts, given in priority order."""
    if exceeds_share(len(eligible), load.meter_count, limits.max_share_percent):
        return DcuPlan(quarantined=True, held=dict.fromkeys(eligible, Rule.DCU_SHARE_EXCEEDED))
    run_left = max(0, limits.max_per_run - already_in_run)
    hour_left = max(0, limits.max_per_hour - load.issued_last_hour)
    # The tighter limit names what held an account back.
    tighter = Rule.DCU_HOURLY_CAP if hour_left < run_left else Rule.DCU_RUN_CAP
    allowed = min(run_left, hour_left)
    return DcuPlan(
        quarantined=False,
        disconnect=tuple(eligible[:allowed]),
        held=dict.fromkeys(eligible[allowed:], tighter),
    )
