"""What the operator console shows, read from the database: fleet overview, command feed,
a meter's history, runs and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.commands.lifecycle import CommandState
from cloud.db.models import (
    AuditEntry,
    Command,
    CommandTransition,
    DisconnectionRun,
    Gateway,
    Meter,
    Payment,
)
from cloud.policy.reports import RunReport, run_report
from wire import RelayState

HOUR = timedelta(hours=1)
# Payment-to-power samples read per overview (the newest; enough for stable percentiles).
P2P_SAMPLES = 20_000


@dataclass(frozen=True)
class Overview:
    """The fleet at a glance."""

    gateways: list[Gateway]
    meters_by_relay: dict[str, int]
    commands_last_hour: dict[str, int]
    p2p_samples: int
    p2p_p50_ms: float | None
    p2p_p99_ms: float | None


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def overview(session: AsyncSession, now: datetime) -> Overview:
    """Gateways, meters by relay state, the last hour's commands and payment to power."""
    since = now - HOUR
    gateways = list((await session.execute(select(Gateway).order_by(Gateway.dcu_id))).scalars())
    relay = func.coalesce(Meter.reported_relay, "unknown")
    by_relay = dict(
        (await session.execute(select(relay, func.count()).group_by(relay))).tuples().all()
    )
    by_state = dict(
        (
            await session.execute(
                select(Command.state, func.count())
                .where(Command.created_at > since)
                .group_by(Command.state)
            )
        )
        .tuples()
        .all()
    )
    pairs = (
        (
            await session.execute(
                select(Payment.received_at, CommandTransition.at)
                .join(Command, Command.payment_id == Payment.payment_id)
                .join(CommandTransition, CommandTransition.command_id == Command.command_id)
                .where(
                    Payment.received_at > since,
                    CommandTransition.to_state == CommandState.SUCCEEDED.value,
                    Command.relay_result == RelayState.CONNECTED.value,
                )
                .order_by(Payment.received_at.desc())
                .limit(P2P_SAMPLES)
            )
        )
        .tuples()
        .all()
    )
    latencies = sorted((done - paid).total_seconds() * 1000 for paid, done in pairs)
    return Overview(
        gateways,
        by_relay,
        by_state,
        len(latencies),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
    )


async def commands_after(
    session: AsyncSession, after: tuple[datetime, str] | None, limit: int = 100
) -> list[Command]:
    """Commands changed after the (updated_at, command_id) position, oldest change first; with
    no position, the latest `limit` changes."""
    query = select(Command)
    if after is None:
        rows = await session.execute(
            query.order_by(Command.updated_at.desc(), Command.command_id.desc()).limit(limit)
        )
        return list(reversed(list(rows.scalars())))
    rows = await session.execute(
        query.where(tuple_(Command.updated_at, Command.command_id) > tuple_(*after))
        .order_by(Command.updated_at, Command.command_id)
        .limit(limit)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class MeterHistory:
    """A meter and its latest commands, each with every transition."""

    meter: Meter
    commands: list[tuple[Command, list[CommandTransition]]]


async def meter_history(
    session: AsyncSession, meter_id: str, limit: int = 20
) -> MeterHistory | None:
    """The meter page's data, or None for an unknown meter."""
    meter = await session.get(Meter, meter_id)
    if meter is None:
        return None
    commands = list(
        (
            await session.execute(
                select(Command)
                .where(Command.meter_id == meter_id)
                .order_by(Command.created_at.desc())
                .limit(limit)
            )
        ).scalars()
    )
    transitions: dict[str, list[CommandTransition]] = {c.command_id: [] for c in commands}
    if commands:
        rows = await session.execute(
            select(CommandTransition)
            .where(CommandTransition.command_id.in_(list(transitions)))
            .order_by(CommandTransition.transition_id)
        )
        for row in rows.scalars():
            transitions[row.command_id].append(row)
    return MeterHistory(meter, [(c, transitions[c.command_id]) for c in commands])


async def latest_runs(session: AsyncSession, limit: int = 20) -> list[RunReport]:
    """The latest disconnection runs with their counts (no per-account results)."""
    run_ids = (
        await session.execute(
            select(DisconnectionRun.run_id).order_by(DisconnectionRun.run_id.desc()).limit(limit)
        )
    ).scalars()
    reports = [await run_report(session, run_id, limit=0) for run_id in list(run_ids)]
    return [report for report in reports if report is not None]


async def audit_entries(session: AsyncSession, limit: int = 200) -> list[AuditEntry]:
    """The newest audit entries."""
    rows = await session.execute(
        select(AuditEntry).order_by(AuditEntry.audit_id.desc()).limit(limit)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class Chart:
    """A line chart as SVG coordinates (drawn server-side: no script, no library)."""

    points: str
    max_value: float
    first: datetime | None
    last: datetime | None


CHART_W, CHART_H = 600, 160


def power_chart(samples: list[tuple[datetime, float]]) -> Chart:
    """Active power over time, scaled into a CHART_W x CHART_H box."""
    if not samples:
        return Chart("", 0.0, None, None)
    start, end = samples[0][0], samples[-1][0]
    span_s = max((end - start).total_seconds(), 1.0)
    top = max(max(value for _, value in samples), 1.0)
    points = " ".join(
        f"{(at - start).total_seconds() / span_s * CHART_W:.1f},"
        f"{CHART_H - value / top * CHART_H:.1f}"
        for at, value in samples
    )
    return Chart(points, top, start, end)
