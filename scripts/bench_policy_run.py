"""Measure a disconnection run at city scale: seed N demo accounts into a fresh database, then
time a dry run and a real run, and the payment intake's latency while the real run executes
(same process, same database) against the same payments with no run.

    .venv/bin/python scripts/bench_policy_run.py --meters 81000 --gateways 200

Prints figures; asserts nothing. Use a fresh database URL (default: a SQLite file in a new
temporary directory)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cloud.commands.desired import CommandFactory
from cloud.commands.presence import PresenceTracker
from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.metrics import CloudMetrics
from cloud.onboarding import register_accounts
from cloud.payments.intake import PaymentIntake
from cloud.payments.webhook import parse_envelope
from cloud.policy.calendar import load_calendar
from cloud.policy.lease import LeaseKeeper
from cloud.policy.reports import run_report
from cloud.policy.rules import RuleBook
from cloud.policy.runs import DisconnectionRunner
from cloud.policy.settings import PolicySettings
from switchyard.demo import build_demo_fleet, register_policy_cases
from switchyard.pay import webhook_body
from wire import CommandSigner, GatewayState
from wire.signing import generate_private_key_b64

# Tuesday 1 December 2026, 11:00 in India: the window is open.
POLICY_NOW = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)


async def _seed(db: Database, meters: int, gateways: int) -> tuple[list[str], list[str]]:
    fleet = build_demo_fleet(meters=meters, gateways=gateways, now=POLICY_NOW)
    started = time.perf_counter()
    await register_accounts(db, fleet.accounts, POLICY_NOW)
    await register_policy_cases(db, fleet.policy_cases, POLICY_NOW)
    print(f"seeded {meters} accounts on {gateways} DCUs in {time.perf_counter() - started:.1f} s")
    return fleet.dcu_ids, [a.account_id for a in fleet.disconnected()]


async def _payments(
    intake: PaymentIntake, payers: list[str], stop: asyncio.Event, tag: str
) -> list[float]:
    latencies: list[float] = []
    n = 0
    while not stop.is_set():
        account_id = payers[n % len(payers)]
        n += 1
        body = webhook_body(account_id, 100, f"pay_{tag}_{n}")
        envelope, document = parse_envelope(body)
        started = time.perf_counter()
        await intake.record(f"evt_{tag}_{n}", envelope, document, body, POLICY_NOW)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return latencies


def _describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return (
        f"{len(ordered)} payments: median {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )


async def main(database_url: str, meters: int, gateways: int) -> None:
    """Seed, then measure."""
    db = Database.from_url(database_url)
    await upgrade_to_head(db.engine)
    dcu_ids, payers = await _seed(db, meters, gateways)
    gc.collect()  # the fleet is gone, as in a cloud process
    factory = CommandFactory(CommandSigner.from_b64("k1", generate_private_key_b64()), 3600)
    presence = PresenceTracker(db, factory, CloudMetrics(), lambda: None, clock=lambda: POLICY_NOW)
    at_ms = int(POLICY_NOW.timestamp() * 1000)
    for dcu_id in dcu_ids:
        await presence.handle(
            GatewayState(dcu_id=dcu_id, online=True, boot_seq=1, at_ms=at_ms, meters=[])
        )
    settings = PolicySettings()
    runner = DisconnectionRunner(
        db,
        factory,
        settings,
        RuleBook.from_settings(settings, load_calendar()),
        LeaseKeeper(db, "bench"),
        policy_clock=lambda: POLICY_NOW,
    )
    intake = PaymentIntake(db, factory)

    stop = asyncio.Event()
    idle = asyncio.create_task(_payments(intake, payers, stop, "idle"))
    await asyncio.sleep(5)
    stop.set()
    print(f"no run:      {_describe(await idle)}")

    for dry_run in (True, False):
        stop = asyncio.Event()
        payer = asyncio.create_task(_payments(intake, payers, stop, f"run{dry_run}"))
        started = time.perf_counter()
        run_id = await runner.run(dry_run=dry_run, trigger="bench", actor=None)
        took = time.perf_counter() - started
        stop.set()
        latencies = await payer
        async with db.read() as session:
            report = await run_report(session, run_id, limit=0)
        assert report is not None
        kind = "dry run: " if dry_run else "real run:"
        print(f"{kind}    {took:.1f} s, {report.total} overdue accounts, {report.by_outcome}")
        print(f"  meanwhile {_describe(latencies)}")
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=81_000)
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='policy-bench-')) / 'cloud.sqlite3'}"
    )
    asyncio.run(main(url, args.meters, args.gateways))
