"""`switchyard bench telemetry`: readings per second sustained into the time-series server."""

from __future__ import annotations

import argparse

from switchyard.bench.scenario import BenchContext, RunResult

TARGET_READINGS_PER_S = 50_000.0  # DESIGN §10


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


class TelemetryScenario:
    """Simulated meters' readings, batched per DCU as gateways do, through a real Mosquitto into
    the cloud's telemetry pipeline (influxdb-client, gzip) and a real VictoriaMetrics."""

    name = "telemetry"
    help = "readings/s from MQTT through the cloud into the time-series server"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Fleet size, duration and where the batches come from."""
        parser.add_argument("--meters", type=_positive, default=10_000, help="meters (10000)")
        parser.add_argument("--dcus", type=_positive, default=20, help="DCUs (20)")
        parser.add_argument("--rounds", type=_positive, default=50, help="readings per meter (50)")
        parser.add_argument(
            "--batch-size", type=_positive, default=200, help="readings per batch (200)"
        )
        parser.add_argument(
            "--source",
            choices=("mqtt", "direct"),
            default="mqtt",
            help="mqtt: a publisher process through Mosquitto (default); direct: batches handed"
            " to the cloud's consumer in-process, without the broker",
        )

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        """One run: start VictoriaMetrics and Mosquitto, stream, verify, stop them."""
        from switchyard.bench.telemetry_run import run_telemetry

        return run_telemetry(args, context, TARGET_READINGS_PER_S)


SCENARIO = TelemetryScenario()
