"""What a benchmark scenario is: its options, one run, and the figures it reports."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from switchyard.bench.progress import Progress


@dataclass(frozen=True)
class Figure:
    """One measured quantity, with its unit; `headline` marks the one the scenario is about."""

    name: str
    value: float
    unit: str
    headline: bool = False
    target: float | None = None  # the design's target, when there is one
    lower_is_better: bool = False  # latencies: the target is a ceiling, not a floor


@dataclass
class RunResult:
    """What one run measured, and anything else worth keeping in the JSON."""

    figures: list[Figure]
    details: dict[str, Any] = field(default_factory=dict)

    def headline(self) -> Figure:
        """The figure the scenario is about (the first one if none is marked)."""
        return next((f for f in self.figures if f.headline), self.figures[0])


@dataclass(frozen=True)
class BenchContext:
    """What the runner hands each run: a scratch directory of its own and the progress bar."""

    workdir: Path
    progress: Progress
    run_index: int
    results_stem: str = ""  # the JSON file's name without `.json`: name other outputs after it


class Scenario(Protocol):
    """A benchmark: it starts the servers it needs, measures, and cleans up after itself."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Its own options."""
        ...

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        """One measured run; every process it started is stopped before it returns."""
        ...
