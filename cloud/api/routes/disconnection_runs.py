"""Disconnection runs: start one (or a dry run), read its results, decide its quarantines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.pagination import CursorQuery, decode_cursor, encode_cursor
from cloud.api.schemas_policy import DisconnectionRunIn, DisconnectionRunOut
from cloud.db.models import DisconnectionRun
from cloud.errors import NotFound
from cloud.policy.decisions import Outcome
from cloud.policy.reports import run_report
from cloud.policy.rules import Rule
from wire.ids import ID_PATTERN

router = APIRouter(prefix="/api/v1/disconnection-runs", tags=["disconnection runs"])

RunIdPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
DcuIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
ResultLimit = Annotated[int, Query(ge=1, le=10_000, description="results per page")]


async def _report(
    runtime: RuntimeDep,
    run_id: str,
    *,
    outcome: Outcome | None = None,
    rule: Rule | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> DisconnectionRunOut:
    async with runtime.db.read() as session:
        report = await run_report(
            session,
            run_id,
            outcome=outcome.value if outcome else None,
            rule=rule.value if rule else None,
            limit=limit,
            after=decode_cursor(cursor),
        )
    if report is None:
        raise NotFound(f"disconnection run {run_id} not found")
    next_cursor = encode_cursor(report.next_after) if report.next_after else None
    return DisconnectionRunOut.build(report, next_cursor)


@router.post(
    "",
    response_model=DisconnectionRunOut,
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 422),
)
async def start_run(
    body: DisconnectionRunIn, runtime: RuntimeDep, operator: OperatorDep
) -> DisconnectionRunOut:
    """Judge every overdue account now; a real run queues the allowed disconnects."""
    run_id = await runtime.policy.runner.run(
        dry_run=body.dry_run, trigger="api", actor=operator.name
    )
    return await _report(runtime, run_id)


@router.get("", response_model=list[DisconnectionRunOut], responses=error_responses(401, 422))
async def list_runs(
    runtime: RuntimeDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[DisconnectionRunOut]:
    """The latest runs, newest first, with their counts (no per-account results)."""
    async with runtime.db.read() as session:
        run_ids = list(
            (
                await session.execute(
                    select(DisconnectionRun.run_id)
                    .order_by(DisconnectionRun.run_id.desc())
                    .limit(limit)
                )
            ).scalars()
        )
    return [await _report(runtime, run_id, limit=0) for run_id in run_ids]


@router.get(
    "/{run_id}", response_model=DisconnectionRunOut, responses=error_responses(401, 404, 422)
)
async def get_run(
    run_id: RunIdPath,
    runtime: RuntimeDep,
    _: ViewerDep,
    outcome: Annotated[Outcome | None, Query()] = None,
    rule: Annotated[Rule | None, Query()] = None,
    limit: ResultLimit = 1000,
    cursor: CursorQuery = None,
) -> DisconnectionRunOut:
    """Progress and results: counts, command states, quarantines, per-account outcomes."""
    return await _report(runtime, run_id, outcome=outcome, rule=rule, limit=limit, cursor=cursor)


@router.post(
    "/{run_id}/quarantines/{dcu_id}/confirm",
    response_model=DisconnectionRunOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def confirm_quarantine(
    run_id: RunIdPath, dcu_id: DcuIdPath, runtime: RuntimeDep, operator: OperatorDep
) -> DisconnectionRunOut:
    """Let a quarantined DCU's disconnections go ahead (every rule is checked again first)."""
    await runtime.policy.runner.decide_quarantine(run_id, dcu_id, confirm=True, actor=operator.name)
    return await _report(runtime, run_id)


@router.post(
    "/{run_id}/quarantines/{dcu_id}/reject",
    response_model=DisconnectionRunOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def reject_quarantine(
    run_id: RunIdPath, dcu_id: DcuIdPath, runtime: RuntimeDep, operator: OperatorDep
) -> DisconnectionRunOut:
    """Cancel a quarantined DCU's disconnections for this run."""
    await runtime.policy.runner.decide_quarantine(
        run_id, dcu_id, confirm=False, actor=operator.name
    )
    return await _report(runtime, run_id)
