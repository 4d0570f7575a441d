"""Reading a disconnection run back: counts by outcome and rule, command progress, results."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.db.models import Command, DcuQuarantine, DisconnectionRun, DisconnectionRunResult


@dataclass(frozen=True)
class ResultRow:
    """One account's result and where its command is now."""

    result: DisconnectionRunResult
    command_state: str | None


@dataclass(frozen=True)
class RunReport:
    """A run with its counts, the progress of its commands, quarantines and a page of results."""

    run: DisconnectionRun
    total: int
    by_outcome: dict[str, int]
    by_rule: dict[str, int]
    command_states: dict[str, int]
    quarantines: list[DcuQuarantine]
    results: list[ResultRow]
    next_after: str | None


async def run_report(
    session: AsyncSession,
    run_id: str,
    *,
    outcome: str | None = None,
    rule: str | None = None,
    limit: int = 1000,
    after: str | None = None,
) -> RunReport | None:
    """The run's report, results filtered and paged by account id (`limit` 0: counts only);
    None for an unknown run."""
    run = await session.get(DisconnectionRun, run_id)
    if run is None:
        return None
    of_run = DisconnectionRunResult.run_id == run_id
    by_outcome = dict(
        (
            await session.execute(
                select(DisconnectionRunResult.outcome, func.count())
                .where(of_run)
                .group_by(DisconnectionRunResult.outcome)
            )
        ).all()
    )
    by_rule = dict(
        (
            await session.execute(
                select(DisconnectionRunResult.rule, func.count())
                .where(of_run, DisconnectionRunResult.rule.is_not(None))
                .group_by(DisconnectionRunResult.rule)
            )
        ).all()
    )
    command_states = dict(
        (
            await session.execute(
                select(Command.state, func.count())
                .join(
                    DisconnectionRunResult, DisconnectionRunResult.command_id == Command.command_id
                )
                .where(of_run)
                .group_by(Command.state)
            )
        ).all()
    )
    quarantines = list(
        (
            await session.execute(
                select(DcuQuarantine)
                .where(DcuQuarantine.run_id == run_id)
                .order_by(DcuQuarantine.dcu_id)
            )
        ).scalars()
    )
    query = (
        select(DisconnectionRunResult, Command.state)
        .outerjoin(Command, Command.command_id == DisconnectionRunResult.command_id)
        .where(of_run)
    )
    if outcome is not None:
        query = query.where(DisconnectionRunResult.outcome == outcome)
    if rule is not None:
        query = query.where(DisconnectionRunResult.rule == rule)
    if after is not None:
        query = query.where(DisconnectionRunResult.account_id > after)
    results: list[ResultRow] = []
    if limit > 0:
        rows = await session.execute(query.order_by(DisconnectionRunResult.account_id).limit(limit))
        results = [ResultRow(result, state) for result, state in rows.all()]
    return RunReport(
        run=run,
        total=sum(by_outcome.values()),
        by_outcome={str(k): v for k, v in by_outcome.items()},
        by_rule={str(k): v for k, v in by_rule.items()},
        command_states={str(k): v for k, v in command_states.items()},
        quarantines=quarantines,
        results=results,
        next_after=results[-1].result.account_id if results and len(results) == limit else None,
    )
