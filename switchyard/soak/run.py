"""`switchyard soak`: a whole stack under workload and seeded faults for N minutes, then healed,
with the invariants checked all along and once everything has settled."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from switchyard.bench.disconnection_run import POLICY_CLOCK
from switchyard.bench.progress import Progress
from switchyard.bench.stacks import BENCH_CLOUD_ENV, bench_database
from switchyard.faultproxy import FaultProxy
from switchyard.procs import free_port
from switchyard.soak.faults import FaultInjector
from switchyard.soak.invariants import (
    CONTINUOUS_CHECKS,
    FINAL_CHECKS,
    Sent,
    Violation,
    World,
    run_checks,
)
from switchyard.soak.observe import ObserveError, observe
from switchyard.soak.report import SoakReport
from switchyard.soak.workload import Workload
from switchyard.stack import LocalStack, StackOptions, start_stack

# After the last fault healed, everything must have settled within this (the invariants' deadline).
CONVERGENCE_DEADLINE_S = 120.0
CHECK_EVERY_S = 5.0
METERS, GATEWAYS = 40, 2
# Enough accounts disconnected for non-payment that payments run all soak long.
DISCONNECTED_SHARE = 0.35
# Short timeouts and backoffs, so that the parts notice faults and recover within the deadline.
SOAK_CLOUD_ENV = {
    **BENCH_CLOUD_ENV,
    "SWITCHYARD_RETRY_BACKOFF_CAP_S": "5",
    "SWITCHYARD_MAX_ATTEMPTS": "10",
    "SWITCHYARD_MQTT_KEEPALIVE_S": "5",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "2",
}
SOAK_GATEWAY_ENV = {"SWITCHYARD_MQTT_KEEPALIVE_S": "5", "SWITCHYARD_MQTT_RECONNECT_MAX_S": "2"}


@dataclass(frozen=True)
class SoakOptions:
    """What `switchyard soak` was asked for."""

    minutes: float
    seed: int
    database: str
    results_dir: Path
    progress: bool = True
    keep_state: bool = False  # leave the stack's state dir (logs, stores) for a post-mortem


def run_soak_command(args: argparse.Namespace) -> int:
    """Run a soak from parsed arguments; 0 when every invariant held, else 1."""
    options = SoakOptions(
        args.minutes,
        args.seed,
        args.database,
        args.results_dir,
        not args.no_progress,
        args.keep_state,
    )
    try:
        report = run_soak(options)
    except KeyboardInterrupt:
        print("\nswitchyard soak: interrupted; nothing left running")
        return 130
    print(report.table())
    print(f"report: {report.write(options.results_dir)}")
    return 0 if report.passed else 1


@contextmanager
def _scratch(*, keep: bool) -> Iterator[Path]:
    """The soak's state dir: removed afterwards unless kept for a post-mortem."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix="switchyard-soak-"))
        print(f"switchyard soak: state kept in {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="switchyard-soak-") as scratch:
        yield Path(scratch)


def run_soak(options: SoakOptions) -> SoakReport:
    """Start everything, soak, heal, check, stop everything; answer the report."""
    report = SoakReport(
        datetime.now(UTC),
        options.minutes,
        options.seed,
        options.database,
        deadline_s=CONVERGENCE_DEADLINE_S,
    )
    progress = Progress(enabled=options.progress)
    with (
        _scratch(keep=options.keep_state) as scratch,
        _soak_stack(scratch, options.database) as (stack, proxy),
    ):
        workload = Workload(stack, options.seed)
        faults = FaultInjector(stack, proxy, options.seed)
        duration_s = options.minutes * 60
        workload.start(disconnection_run_after_s=duration_s * 0.2)
        faults.start()
        try:
            _under_faults(stack, workload.sent, report, progress, duration_s, faults)
        finally:
            faults.stop()
            workload.stop(finish_within_s=CONVERGENCE_DEADLINE_S)
            report.faults, report.workload = faults.injected, workload.counts
        if faults.error:  # a part that cannot be brought back is a failure of the soak
            report.violations.append(Violation("faults", "heal", {"error": faults.error}))
        report.notes += [f"workload: {error}" for error in workload.errors[:5]]
        if not report.violations:
            _settle(stack, workload.sent, report, progress, faults.last_healed_at)
    return report


@contextmanager
def _soak_stack(scratch: Path, database: str) -> Iterator[tuple[LocalStack, FaultProxy]]:
    """A stack whose gateways reach the broker through a fault proxy; all stopped after."""
    mqtt_port = free_port()
    proxy = FaultProxy("127.0.0.1", mqtt_port).start()
    try:
        with bench_database(database, scratch) as database_url:
            stack = start_stack(
                StackOptions(
                    meters=METERS,
                    gateways=GATEWAYS,
                    port=free_port(),
                    mqtt_port=mqtt_port,
                    gateway_mqtt_port=proxy.port,
                    state_dir=scratch / "run",
                    secrets_dir=scratch / "secrets",
                    database_url=database_url,
                    policy_clock=POLICY_CLOCK,
                    telemetry_interval_s=5.0,
                    disconnected_share=DISCONNECTED_SHARE,
                    cloud_env=SOAK_CLOUD_ENV,
                    gateway_env=SOAK_GATEWAY_ENV,
                )
            )
            try:
                yield stack, proxy
            finally:
                stack.stop()
    finally:
        proxy.stop()


def _under_faults(
    stack: LocalStack,
    sent: Sent,
    report: SoakReport,
    progress: Progress,
    duration_s: float,
    faults: FaultInjector,
) -> None:
    """Let workload and faults run; check the continuous invariants now and then."""
    started = time.monotonic()
    progress.start("soak under faults", duration_s)
    while (elapsed_s := time.monotonic() - started) < duration_s and faults.error is None:
        progress.update(elapsed_s, f"{len(faults.injected)} faults")
        world = _try_observe(stack)
        if world is not None:
            report.checked.update(CONTINUOUS_CHECKS.keys())
            report.violations += run_checks(CONTINUOUS_CHECKS, world, sent)
            if report.violations:
                break
        time.sleep(CHECK_EVERY_S)
    progress.finish(f"{len(faults.injected)} faults")


def _settle(
    stack: LocalStack, sent: Sent, report: SoakReport, progress: Progress, healed_at: float
) -> None:
    """Check every invariant until all hold or the deadline passes; keep the last findings."""
    deadline = healed_at + CONVERGENCE_DEADLINE_S
    progress.start("healing, then checking", CONVERGENCE_DEADLINE_S)
    violations: list[Violation] = [Violation("settled", "stack", {"reason": "never observed"})]
    while True:
        progress.update(time.monotonic() - healed_at, f"{len(violations)} open")
        world = _try_observe(stack)
        if world is not None:
            report.checked.update(FINAL_CHECKS.keys())
            violations = run_checks(FINAL_CHECKS, world, sent)
            if not violations:
                report.converged_s = round(time.monotonic() - healed_at, 1)
                break
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    progress.finish(f"{len(violations)} violations")
    report.violations += violations


def _try_observe(stack: LocalStack) -> World | None:
    try:
        return observe(stack)
    except ObserveError:
        return None
