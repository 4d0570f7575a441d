"""One payments run: pay disconnected accounts at a fixed rate and read back, from the cloud's
own audit trail, how long each took from webhook receipt to the relay confirmed connected."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from cloud.db.models import Command, CommandTransition
from cloud.db.session import Database
from cloud.ledger.service import account_dues
from cloud.payments.webhook import sign_body
from switchyard.bench.http_load import HttpLoadError, LoadClient
from switchyard.pay import webhook_body
from switchyard.stack import LocalStack

ACTIVE = ("QUEUED", "SENT", "DELIVERED")


@dataclass
class PaymentsMeasurement:
    """What one payments run measured."""

    sent: int = 0
    accepted: int = 0
    refused: int = 0
    send_duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    not_succeeded: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        """Payments per second actually sent."""
        return self.sent / self.send_duration_s if self.send_duration_s else 0.0


async def _amounts(database_url: str, accounts: Sequence[str]) -> dict[str, int]:
    db = Database.from_url(database_url)
    try:
        async with db.read() as session:
            return {a: (await account_dues(session, a)).total_payable_paise for a in accounts}
    finally:
        await db.close()


async def _send_at_rate(
    stack: LocalStack,
    targets: Sequence[tuple[str, int]],
    rate_per_s: float,
    measured: PaymentsMeasurement,
    on_sent: Callable[[int], None],
) -> list[str]:
    """Open loop: payment n leaves at n / rate, however slowly the earlier ones are answered."""
    command_ids: list[str] = []
    secret = stack.secrets.webhook_secret
    # Several cloud processes: the payments are spread over them, as a load balancer would.
    clients = []
    for api_url in stack.api_urls:
        host, port = api_url.removeprefix("http://").rsplit(":", 1)
        clients.append(LoadClient(host, int(port), connections=64))

    async def pay(account_id: str, amount_paise: int, client: LoadClient) -> None:
        body = webhook_body(account_id, amount_paise, f"pay_{secrets.token_hex(7)}")
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, secret),
            "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
        }
        try:
            status, answer = await client.post("/api/v1/payments/webhook", body, headers)
        except HttpLoadError as exc:
            measured.refused += 1
            measured.errors.append(f"{account_id}: {exc}")
            return
        command_id = json.loads(answer).get("command_id") if status == 200 else None
        if command_id:
            measured.accepted += 1
            command_ids.append(command_id)
        else:
            measured.refused += 1
            measured.errors.append(f"{account_id}: HTTP {status} {answer[:200]!r}")

    started = time.perf_counter()
    in_flight: list[asyncio.Task[None]] = []
    for n, (account_id, amount_paise) in enumerate(targets):
        delay_s = started + n / rate_per_s - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        client = clients[n % len(clients)]
        in_flight.append(asyncio.create_task(pay(account_id, amount_paise, client)))
        measured.sent += 1
        on_sent(measured.sent)
    measured.send_duration_s = time.perf_counter() - started
    await asyncio.gather(*in_flight)
    for client in clients:
        await client.close()
    return command_ids


async def _wait_final(database_url: str, command_ids: Sequence[str], timeout_s: float) -> None:
    db = Database.from_url(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with db.read() as session:
                active = await session.scalar(
                    select(Command.command_id)
                    .where(Command.command_id.in_(command_ids), Command.state.in_(ACTIVE))
                    .limit(1)
                )
            if active is None:
                return
            await asyncio.sleep(0.5)
    finally:
        await db.close()


async def _payment_to_power_ms(
    database_url: str, command_ids: Sequence[str]
) -> tuple[list[float], int]:
    """Webhook receipt to SUCCEEDED, per command, from the stored transitions."""
    db = Database.from_url(database_url)
    latencies: list[float] = []
    not_succeeded = 0
    try:
        async with db.read() as session:
            for start in range(0, len(command_ids), 500):
                rows = await session.execute(
                    select(Command.requested_at, Command.state, CommandTransition.at)
                    .join(
                        CommandTransition,
                        (CommandTransition.command_id == Command.command_id)
                        & (CommandTransition.to_state == "SUCCEEDED"),
                        isouter=True,
                    )
                    .where(Command.command_id.in_(command_ids[start : start + 500]))
                )
                for requested_at, state, succeeded_at in rows.all():
                    if state != "SUCCEEDED" or succeeded_at is None:
                        not_succeeded += 1
                    else:
                        latencies.append((succeeded_at - requested_at).total_seconds() * 1000)
    finally:
        await db.close()
    return latencies, not_succeeded


def measure_payments(
    stack: LocalStack, *, rate_per_s: float, duration_s: float, on_sent: Callable[[int], None]
) -> PaymentsMeasurement:
    """Pay `rate * duration` disconnected accounts in full; measure payment to power of each."""
    count = int(rate_per_s * duration_s)
    accounts = [a.account_id for a in stack.fleet.disconnected()][:count]
    if len(accounts) < count:
        have = len(accounts)
        raise ValueError(f"{count} payments need as many disconnected accounts; there are {have}")
    amounts = asyncio.run(_amounts(stack.database_url, accounts))
    measured = PaymentsMeasurement()
    targets = [(a, amounts[a]) for a in accounts]
    command_ids = asyncio.run(_send_at_rate(stack, targets, rate_per_s, measured, on_sent))
    asyncio.run(_wait_final(stack.database_url, command_ids, timeout_s=300))
    measured.latencies_ms, measured.not_succeeded = asyncio.run(
        _payment_to_power_ms(stack.database_url, command_ids)
    )
    return measured
