"""`switchyard bench telemetry` works end to end on a tiny fleet (no figure is judged here:
benchmarks are programs; this only checks the program runs, counts and cleans up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchyard.cli import main

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source", ["mqtt", "direct"])
def test_tiny_telemetry_bench_stores_every_reading(tmp_path: Path, source: str) -> None:
    argv = ["bench", "telemetry", "--meters", "60", "--dcus", "2", "--rounds", "3"]
    argv += ["--batch-size", "20", "--source", source, "--no-progress"]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0

    (written,) = tmp_path.glob("telemetry-*.json")
    run = json.loads(written.read_text())["runs"][0]
    figures = {f["name"]: f["value"] for f in run["figures"]}
    assert figures["readings"] == 180
    assert figures["readings stored (counted in the TSDB)"] == 180
    assert run["details"]["duplicates_or_missing"] == 0
