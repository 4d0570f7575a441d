"""Runs a scenario (several times if asked), prints its table and writes its results as JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from switchyard.bench.progress import Progress
from switchyard.bench.scenario import BenchContext, Figure, RunResult, Scenario

# Each module defines SCENARIO; keep their top-level imports light (the CLI imports them all).
SCENARIO_MODULES = (
    "switchyard.bench.payments",
    "switchyard.bench.disconnection",
    "switchyard.bench.telemetry",
    "switchyard.bench.broker",
)


def load_scenarios() -> dict[str, Scenario]:
    """Every registered scenario by name."""
    scenarios: dict[str, Scenario] = {}
    for module_name in SCENARIO_MODULES:
        scenario: Scenario = importlib.import_module(module_name).SCENARIO
        scenarios[scenario.name] = scenario
    return scenarios


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def add_bench_parser(sub: Any) -> None:
    """Add `bench <scenario>` to the CLI's subcommands (`sub` is argparse's subparsers action)."""
    bench = sub.add_parser("bench", help="benchmarks: each starts its own servers and cleans up")
    scenarios = bench.add_subparsers(dest="scenario", required=True)
    for scenario in load_scenarios().values():
        parser = scenarios.add_parser(scenario.name, help=scenario.help)
        parser.add_argument("--runs", type=_at_least_one, default=1, help="repeat; report medians")
        parser.add_argument("--results-dir", type=Path, default=Path(".switchyard/bench"))
        parser.add_argument("--no-progress", action="store_true", help="no progress output")
        scenario.add_arguments(parser)


def run_bench(args: argparse.Namespace) -> int:
    """Run `args.scenario` `args.runs` times; print tables; write one JSON file."""
    scenario = load_scenarios()[args.scenario]
    progress = Progress(enabled=not args.no_progress)
    started_at = datetime.now(UTC)
    results: list[RunResult] = []
    prefix = f"switchyard-bench-{scenario.name}-"
    for index in range(args.runs):
        try:
            with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
                context = BenchContext(Path(scratch), progress, index, _stem(scenario, started_at))
                result = scenario.run(args, context)
        except KeyboardInterrupt:
            # The scenario's context managers have stopped every process it started.
            print(f"\nswitchyard bench {scenario.name}: interrupted; nothing left running")
            return 130
        results.append(result)
        print(_table(f"{scenario.name}: run {index + 1} of {args.runs}", result.figures))
    medians = _medians(results)
    if args.runs > 1:
        print(_table(f"{scenario.name}: median of {args.runs} runs", medians))
    path = _write_json(args, scenario, started_at, results, medians)
    for figure in medians:
        if figure.headline or figure.target is not None:
            print(f"{figure.name}: {figure.value:,.0f} {figure.unit}" + _versus(figure))
    print(f"results: {path}")
    return 0


def _medians(results: list[RunResult]) -> list[Figure]:
    first = results[0].figures
    return [
        Figure(
            figure.name,
            statistics.median(r.figures[i].value for r in results),
            figure.unit,
            figure.headline,
            figure.target,
            figure.lower_is_better,
        )
        for i, figure in enumerate(first)
    ]


def _versus(figure: Figure) -> str:
    if figure.target is None:
        return ""
    if figure.lower_is_better:
        verdict = "meets" if figure.value <= figure.target else "MISSES"
        return f" ({verdict} the target of at most {figure.target:,.0f})"
    verdict = "meets" if figure.value >= figure.target else "BELOW"
    return f" ({verdict} the target of {figure.target:,.0f})"


def _table(title: str, figures: list[Figure]) -> str:
    width = max(len(f.name) for f in figures)
    lines = [title, "-" * max(len(title), width + 24)]
    for figure in figures:
        value = f"{figure.value:,.2f}" if abs(figure.value) < 100 else f"{figure.value:,.0f}"
        mark = "  <- headline" if figure.headline else ""
        lines.append(f"{figure.name:<{width}}  {value:>14} {figure.unit}{mark}")
    return "\n".join(lines) + "\n"


def _stem(scenario: Scenario, started_at: datetime) -> str:
    return f"{scenario.name}-{started_at:%Y%m%dT%H%M%SZ}"


def _write_json(
    args: argparse.Namespace,
    scenario: Scenario,
    started_at: datetime,
    results: list[RunResult],
    medians: list[Figure],
) -> Path:
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{_stem(scenario, started_at)}.json"
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    document = {
        "scenario": scenario.name,
        "started_at": started_at.isoformat(),
        "command": ["switchyard", *sys.argv[1:]],
        "options": options,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": [{"figures": [vars(f) for f in r.figures], "details": r.details} for r in results],
        "median": [vars(f) for f in medians],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
