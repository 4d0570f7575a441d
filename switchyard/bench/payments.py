"""`switchyard bench payments`: payment to power under a steady stream of payments."""

from __future__ import annotations

import argparse

from switchyard.bench.scenario import BenchContext, Figure, RunResult
from switchyard.bench.stacks import add_database_argument

TARGET_P50_MS = 50.0  # DESIGN §10
TARGET_P99_MS = 250.0


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


class PaymentsScenario:
    """N meters on G DCUs, most disconnected; payments at a fixed rate for a duration, through
    the real webhook, cloud, Mosquitto (TLS), gateways and simulated meters."""

    name = "payments"
    help = "payment-to-power latency at a fixed payment rate"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Fleet, rate, duration and database."""
        parser.add_argument("--meters", type=int, default=10_000, help="meters (10000)")
        parser.add_argument("--dcus", type=int, default=20, help="DCUs, one gateway each (20)")
        parser.add_argument("--rate", type=_positive, default=100.0, help="payments/s (100)")
        parser.add_argument("--duration-s", type=_positive, default=60.0, help="seconds (60)")
        parser.add_argument("--link-latency-ms", type=float, default=0.0, help="meter link (0)")
        add_database_argument(parser, default="sqlite")

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        """Start the stack, pay, read the latencies back, stop everything."""
        from switchyard.bench.payments_run import measure_payments
        from switchyard.bench.plot import latency_plot, quantile
        from switchyard.bench.stacks import bench_stack
        from switchyard.stack import StackOptions

        count = int(args.rate * args.duration_s)
        share = min(0.95, max(0.1, (count + 50) / args.meters))
        options = StackOptions(
            meters=args.meters,
            gateways=args.dcus,
            port=0,
            state_dir=context.workdir / "stack",
            disconnected_share=share,
            link_latency_ms=args.link_latency_ms,
            secrets_dir=context.workdir / "secrets",
        )
        progress = context.progress
        progress.start(f"starting {args.meters} meters on {args.dcus} gateways", 1)
        with bench_stack(options, args.database) as stack:
            progress.finish()
            progress.start(f"paying {count} accounts at {args.rate:g}/s", count)
            measured = measure_payments(
                stack,
                rate_per_s=args.rate,
                duration_s=args.duration_s,
                on_sent=lambda sent: progress.update(sent),
            )
            progress.finish(f"{measured.accepted} accepted")
        ordered = sorted(measured.latencies_ms)
        plot = latency_plot(
            ordered,
            f"payment to power: {count} payments at {args.rate:g}/s, {args.meters} meters on "
            f"{args.dcus} DCUs, {args.database}",
            args.results_dir / f"{context.results_stem}-run{context.run_index + 1}.png",
        )
        return RunResult(
            figures=[
                Figure(
                    "payment to power p50",
                    quantile(ordered, 0.50),
                    "ms",
                    True,
                    TARGET_P50_MS,
                    lower_is_better=True,
                ),
                Figure("payment to power p95", quantile(ordered, 0.95), "ms"),
                Figure(
                    "payment to power p99",
                    quantile(ordered, 0.99),
                    "ms",
                    False,
                    TARGET_P99_MS,
                    lower_is_better=True,
                ),
                Figure("payment to power max", ordered[-1] if ordered else 0.0, "ms"),
                Figure("achieved payment rate", measured.achieved_rate, "payments/s"),
                Figure("reconnects confirmed", float(len(ordered)), "commands"),
                Figure("not confirmed", float(measured.not_succeeded), "commands"),
            ],
            details={
                "payments": measured.sent,
                "refused": measured.refused,
                "plot": str(plot) if plot else None,
                "database": args.database,
            },
        )


SCENARIO = PaymentsScenario()
