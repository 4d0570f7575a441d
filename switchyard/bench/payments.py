"""Benchmark `payments`: payment to power under a steady stream of payments.

N meters on G DCUs, most disconnected for non-payment; payments arrive at a fixed rate (open
loop: a slow system does not slow the arrivals) for a duration. Payment to power is measured by
the cloud itself — webhook receipt to the reconnect command's SUCCEEDED transition — and read
from the database after the run.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from cloud.db.models import Command, CommandTransition
from cloud.db.session import Database
from cloud.ledger.service import account_dues
from cloud.payments.webhook import sign_body
from switchyard.pay import webhook_body
from switchyard.stack import LocalStack


@dataclass
class PaymentsResult:
    """What one payments run measured."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    send_duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    not_succeeded: int = 0

    @property
    def achieved_rate(self) -> float:
        """Payments per second actually sent."""
        return self.sent / self.send_duration_s if self.send_duration_s else 0.0


async def _amounts(database_url: str, accounts: list[str]) -> dict[str, int]:
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            return {a: (await account_dues(session, a)).total_payable_paise for a in accounts}
    finally:
        await db.close()


async def _send_payments(
    stack: LocalStack,
    targets: list[tuple[str, int]],
    rate_per_s: float,
    result: PaymentsResult,
    on_progress: object = None,
) -> list[str]:
    command_ids: list[str] = []
    secret = stack.secrets.webhook_secret
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30.0, limits=limits) as client:

        async def pay(account_id: str, amount_paise: int) -> None:
            body = webhook_body(account_id, amount_paise, f"pay_{secrets.token_hex(7)}")
            response = await client.post(
                "/api/v1/payments/webhook",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Razorpay-Signature": sign_body(body, secret),
                    "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
                },
            )
            if response.status_code == 200 and response.json().get("command_id"):
                result.accepted += 1
                command_ids.append(response.json()["command_id"])
            else:
                result.rejected += 1

        started = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        for n, (account_id, amount) in enumerate(targets):
            due = started + n / rate_per_s
            delay_s = due - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            tasks.append(asyncio.create_task(pay(account_id, amount)))
            result.sent += 1
            if callable(on_progress):
                on_progress(result.sent)
        result.send_duration_s = time.perf_counter() - started
        await asyncio.gather(*tasks)
    return command_ids


async def _wait_succeeded(database_url: str, command_ids: list[str], timeout_s: float) -> None:
    db = Database.from_url(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with db.read() as session:
                active = await session.scalar(
                    select(Command.command_id)
                    .where(
                        Command.command_id.in_(command_ids),
                        Command.state.in_(["QUEUED", "SENT", "DELIVERED"]),
                    )
                    .limit(1)
                )
            if active is None:
                return
            await asyncio.sleep(0.5)
    finally:
        await db.close()


async def _latencies_ms(database_url: str, command_ids: list[str]) -> tuple[list[float], int]:
    db = Database.from_url(database_url)
    latencies: list[float] = []
    failed = 0
    try:
        async with db.read() as session:
            for start in range(0, len(command_ids), 500):
                chunk = command_ids[start : start + 500]
                rows = await session.execute(
                    select(Command.requested_at, Command.state, CommandTransition.at)
                    .join(
                        CommandTransition,
                        (CommandTransition.command_id == Command.command_id)
                        & (CommandTransition.to_state == "SUCCEEDED"),
                        isouter=True,
                    )
                    .where(Command.command_id.in_(chunk))
                )
                for requested_at, state, succeeded_at in rows.all():
                    if state != "SUCCEEDED" or succeeded_at is None:
                        failed += 1
                        continue
                    latencies.append(_ms(succeeded_at - requested_at))
    finally:
        await db.close()
    return latencies, failed


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


def run_payments(
    stack: LocalStack, *, rate_per_s: float, duration_s: float, on_progress: object = None
) -> PaymentsResult:
    """Pay disconnected accounts at a fixed rate; measure payment to power for each."""
    count = int(rate_per_s * duration_s)
    accounts = [a.account_id for a in stack.fleet.disconnected()][:count]
    if len(accounts) < count:
        raise ValueError(
            f"{count} payments need {count} disconnected accounts, have {len(accounts)}"
        )
    amounts = asyncio.run(_amounts(stack.database_url, accounts))
    result = PaymentsResult()
    command_ids = asyncio.run(
        _send_payments(stack, [(a, amounts[a]) for a in accounts], rate_per_s, result, on_progress)
    )
    asyncio.run(_wait_succeeded(stack.database_url, command_ids, timeout_s=120))
    result.latencies_ms, result.not_succeeded = asyncio.run(
        _latencies_ms(stack.database_url, command_ids)
    )
    return result


__all__ = ["Path", "PaymentsResult", "datetime", "run_payments"]
