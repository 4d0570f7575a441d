"""One mass-disconnection run: every account overdue and eligible, one policy run, then the time
until every disconnect is confirmed by its meter (relay read back), from the audit trail."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from cloud.db.models import Command, CommandTransition
from cloud.db.session import Database
from cloud.onboarding import AccountRecord, BillRecord
from switchyard.demo import DemoFleet, PolicyCase
from switchyard.stack import LocalStack
from wire import RelayState

# A Tuesday inside the default window (Mon-Sat 10:00-17:00 Asia/Kolkata), not a holiday.
POLICY_CLOCK = datetime(2026, 12, 8, 11, 0, tzinfo=ZoneInfo("Asia/Kolkata"))

# Every safety cap opened: the benchmark measures throughput, not the safety rules.
UNCAPPED_POLICY_ENV = {
    "SWITCHYARD_POLICY_MAX_DCU_SHARE_PERCENT": "100",
    "SWITCHYARD_POLICY_MAX_PER_DCU_PER_RUN": "1000000",
    "SWITCHYARD_POLICY_MAX_PER_DCU_PER_HOUR": "1000000",
}


def eligible_fleet(accounts: int, dcus: int, now: datetime = POLICY_CLOCK) -> DemoFleet:
    """Accounts that every rule allows to disconnect: overdue, noticed, in the cohort, capable."""
    dcu_ids = [f"DCU{n:02d}" for n in range(1, dcus + 1)]
    due = (now - timedelta(days=25)).date()
    records, cases = [], []
    for n in range(1, accounts + 1):
        account_id = f"ACC{n:06d}"
        bill = BillRecord(
            bill_id=f"BILL{n:07d}",
            amount_paise=150_000 + (n % 97) * 1_000,
            issued_at=now - timedelta(days=40),
            due_date=due,
            period=(due - timedelta(days=45), due - timedelta(days=15)),
        )
        records.append(
            AccountRecord(
                account_id=account_id,
                consumer_name=f"Consumer {n}",
                meter_id=f"MTR{n:06d}",
                dcu_id=dcu_ids[(n - 1) % dcus],
                relay=RelayState.CONNECTED,
                control_mode=2,
                installed_on=date(2022, 6, 1),
                bills=[bill],
            )
        )
        cases.append(PolicyCase(account_id, "eligible", notice_served_at=now - timedelta(days=20)))
    return DemoFleet(accounts=records, dcu_ids=dcu_ids, policy_cases=cases)


@dataclass(frozen=True)
class DisconnectionMeasurement:
    """What one mass disconnection measured."""

    to_disconnect: int
    confirmed: int
    run_wall_s: float
    first_to_last_s: float

    @property
    def confirmed_per_s(self) -> float:
        """Confirmed relay operations per second, run start to the last confirmation."""
        return self.confirmed / self.first_to_last_s if self.first_to_last_s else 0.0


async def _progress(database_url: str) -> tuple[int, int]:
    """(policy commands still active, policy commands SUCCEEDED)."""
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            rows = await session.execute(
                select(Command.state, func.count())
                .where(Command.origin == "policy")
                .group_by(Command.state)
            )
            counts = dict(rows.all())
    finally:
        await db.close()
    active = sum(counts.get(state, 0) for state in ("QUEUED", "SENT", "DELIVERED"))
    return active, counts.get("SUCCEEDED", 0)


async def _last_success(database_url: str) -> datetime | None:
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            return await session.scalar(
                select(func.max(CommandTransition.at))
                .join(Command, Command.command_id == CommandTransition.command_id)
                .where(Command.origin == "policy", CommandTransition.to_state == "SUCCEEDED")
            )
    finally:
        await db.close()


def measure_disconnection(
    stack: LocalStack, expected: int, on_progress: object, timeout_s: float = 900.0
) -> DisconnectionMeasurement:
    """Start a real run through the API and wait until every disconnect is final."""
    operator = {"Authorization": f"Bearer {stack.secrets.operator_token}"}
    started_wall = time.time()
    started = time.perf_counter()
    with httpx.Client(base_url=stack.api_url, timeout=timeout_s) as client:
        response = client.post(
            "/api/v1/disconnection-runs", json={"dry_run": False}, headers=operator
        )
        response.raise_for_status()
    run_wall_s = time.perf_counter() - started
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active, succeeded = asyncio.run(_progress(stack.database_url))
        if callable(on_progress):
            on_progress(succeeded)
        if active == 0:
            break
        time.sleep(0.5)
    last = asyncio.run(_last_success(stack.database_url))
    first_to_last_s = (last.timestamp() - started_wall) if last else 0.0
    return DisconnectionMeasurement(expected, succeeded, run_wall_s, first_to_last_s)
