"""The policy in force, and the global kill switch."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import OperatorDep, RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.schemas_policy import HolidayOut, KillSwitchIn, KillSwitchOut, PolicyOut
from cloud.clock import utcnow
from cloud.policy.controls import kill_switch, set_kill_switch
from cloud.policy.rules import Rule

router = APIRouter(prefix="/api/v1/policy", tags=["policy"])


@router.get("", response_model=PolicyOut, responses=error_responses(401, 422))
async def get_policy(runtime: RuntimeDep, _: ViewerDep) -> PolicyOut:
    """Every policy setting with its value, the rule names, holidays and the kill switch."""
    policy = runtime.policy
    async with runtime.db.read() as session:
        switch = await kill_switch(session)
    return PolicyOut(
        settings=policy.settings.model_dump(mode="json"),
        rules=[rule.value for rule in Rule],
        holidays_source=policy.calendar.source,
        holidays_note=policy.calendar.note,
        holidays=[
            HolidayOut(date=d, name=n, provisional=d in policy.calendar.provisional)
            for d, n in policy.calendar.holidays.items()
        ],
        kill_switch=KillSwitchOut(
            engaged=switch.engaged,
            reason=switch.reason,
            changed_at=switch.changed_at,
            changed_by=switch.changed_by,
        ),
        scheduler_enabled=policy.scheduler_enabled,
        policy_time=policy.policy_clock(),
        clock_fixed=policy.settings.clock is not None,
        reconnection_fee_paise=runtime.settings.reconnection_fee_paise,
    )


@router.put(
    "/kill-switch", response_model=KillSwitchOut, responses=error_responses(400, 401, 403, 409, 422)
)
async def put_kill_switch(
    body: KillSwitchIn, runtime: RuntimeDep, operator: OperatorDep
) -> KillSwitchOut:
    """Engage (stop all policy disconnections, withdraw pending ones) or release the switch."""
    now = utcnow()
    async with runtime.db.write() as session:
        withdrawn = await set_kill_switch(
            session,
            runtime.factory,
            engaged=body.engaged,
            reason=body.reason,
            actor=operator.name,
            now=now,
        )
    if withdrawn:
        runtime.dispatcher.wake()
    return KillSwitchOut(
        engaged=body.engaged,
        reason=body.reason,
        changed_at=now,
        changed_by=operator.name,
        withdrawn_commands=withdrawn,
    )
