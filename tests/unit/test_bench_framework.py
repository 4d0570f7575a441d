"""The benchmark framework: scenarios plug in, results are tabled and kept as JSON, and the
progress display degrades to plain lines without a terminal."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from switchyard.bench import BenchContext, Figure, Progress, RunResult, runner
from switchyard.cli import build_parser


class CountingScenario:
    """A scenario that measures nothing real: run n reports 10 * n."""

    name = "counting"
    help = "test scenario"

    def __init__(self) -> None:
        self.stems: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--step", type=int, default=10)

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        assert context.workdir.is_dir()
        self.stems.append(context.results_stem)
        context.progress.start("counting", 3)
        for done in range(4):
            context.progress.update(done)
        context.progress.finish()
        value = float(args.step * (context.run_index + 1))
        return RunResult([Figure("things/s", value, "things/s", True, 15.0)], {"i": 1})


def test_a_scenario_plugs_in_and_reports_medians_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = CountingScenario()
    monkeypatch.setattr(runner, "load_scenarios", lambda: {"counting": scenario})
    parser = argparse.ArgumentParser()
    runner.add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["bench", "counting", "--runs", "3", "--results-dir", str(tmp_path), "--no-progress"]
    )

    assert runner.run_bench(args) == 0

    out = capsys.readouterr().out
    assert "counting: median of 3 runs" in out
    assert "things/s: 20 things/s (meets the target of 15)" in out
    (written,) = tmp_path.glob("counting-*.json")
    document = json.loads(written.read_text())
    assert [run["figures"][0]["value"] for run in document["runs"]] == [10.0, 20.0, 30.0]
    assert document["median"][0]["value"] == 20.0
    assert document["options"]["runs"] == 3
    # Plots and other outputs of every run are named after the JSON file: nothing overwritten.
    assert scenario.stems == [written.stem] * 3


class InterruptedScenario(CountingScenario):
    """Ctrl-C arrives in the middle of a run."""

    def run(self, args: argparse.Namespace, context: BenchContext) -> RunResult:
        raise KeyboardInterrupt


def test_ctrl_c_ends_the_bench_with_a_message_and_writes_no_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "load_scenarios", lambda: {"counting": InterruptedScenario()})
    parser = argparse.ArgumentParser()
    runner.add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "counting", "--results-dir", str(tmp_path), "--no-progress"])

    assert runner.run_bench(args) == 130

    assert "counting: interrupted" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_cli_has_the_telemetry_scenario() -> None:
    args = build_parser().parse_args(["bench", "telemetry", "--meters", "10", "--rounds", "2"])
    assert (args.command, args.scenario, args.meters, args.rounds) == ("bench", "telemetry", 10, 2)


def test_progress_without_a_terminal_prints_plain_lines() -> None:
    stream = io.StringIO()
    progress = Progress(stream, interactive=False)
    progress.start("phase", 10)
    for done in range(11):
        progress.update(done)
    progress.finish("ok")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "phase: started" and lines[-1].startswith("phase: done in")
    assert "\r" not in stream.getvalue()


def test_progress_on_a_terminal_draws_a_bar() -> None:
    stream = io.StringIO()
    progress = Progress(stream, interactive=True)
    progress.start("phase", 4)
    progress.update(4)
    progress.finish()
    assert "\rphase [" in stream.getvalue() and "100.0%" in stream.getvalue()
