"""`switchyard bench disconnection`: confirmed relay operations per second in a mass
disconnection, and the ratio to the bare broker's QoS 1 round trips measured in the same run."""

from __future__ import annotations

import argparse

from switchyard.bench.scenario import BenchContext, Figure, RunResult
from switchyard.bench.stacks import add_database_argument

TARGET_CONFIRMED_PER_S = 2_000.0  # DESIGN §10


class DisconnectionScenario:
    """N eligible accounts on G DCUs; one real disconnection run through the API; every relay
    read back from its simulated meter; PostgreSQL by default, as the design asks."""

    name = "disconnection"
    help = "confirmed relay operations per second in a mass disconnection run"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Fleet and database."""
        parser.add_argument("--accounts", type=int, default=20_000, help="eligible accounts")
        parser.add_argument("--dcus", type=int, default=20, help="DCUs, one gateway each (20)")
        add_database_argument(parser, default="postgresql")

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        """Bare broker first, then the stack, the run, the confirmations; stop everything."""
        import asyncio

        from switchyard.bench.broker import measure_round_trips
        from switchyard.bench.disconnection_run import (
            POLICY_CLOCK,
            UNCAPPED_POLICY_ENV,
            eligible_fleet,
            measure_disconnection,
        )
        from switchyard.bench.stacks import bench_stack
        from switchyard.broker import start_broker
        from switchyard.stack import StackOptions

        progress = context.progress
        progress.start("bare broker QoS 1 round trips", 1)
        bare = start_broker(context.workdir / "bare-broker")
        try:
            broker = asyncio.run(measure_round_trips(bare.host, bare.port))
        finally:
            bare.process.stop()
        progress.finish(f"{broker.per_second:,.0f}/s")

        fleet = eligible_fleet(args.accounts, args.dcus)
        options = StackOptions(
            meters=args.accounts,
            gateways=args.dcus,
            port=0,
            state_dir=context.workdir / "stack",
            secrets_dir=context.workdir / "secrets",
            policy_clock=POLICY_CLOCK,
            fleet=fleet,
            cloud_env=UNCAPPED_POLICY_ENV,
        )
        progress.start(f"starting {args.accounts} meters on {args.dcus} gateways", 1)
        with bench_stack(options, args.database) as stack:
            progress.finish()
            progress.start(f"disconnecting {args.accounts} meters", args.accounts)
            measured = measure_disconnection(
                stack, args.accounts, on_progress=lambda done: progress.update(done)
            )
            progress.finish(f"{measured.confirmed} confirmed")
        ratio = measured.confirmed_per_s / broker.per_second if broker.per_second else 0.0
        return RunResult(
            figures=[
                Figure(
                    "confirmed relay operations",
                    measured.confirmed_per_s,
                    "ops/s",
                    True,
                    TARGET_CONFIRMED_PER_S,
                ),
                Figure("bare broker QoS 1 round trips", broker.per_second, "round trips/s"),
                Figure("confirmed commands / broker round trips", ratio, "ratio"),
                Figure("run wall time (judge and queue)", measured.run_wall_s, "s"),
                Figure("run start to last confirmation", measured.first_to_last_s, "s"),
                Figure("confirmed", float(measured.confirmed), "meters"),
            ],
            details={"database": args.database, "accounts": args.accounts, "dcus": args.dcus},
        )


SCENARIO = DisconnectionScenario()
