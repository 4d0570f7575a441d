"""A short soak end to end: a real stack, seeded faults, every invariant checked at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchyard.soak.invariants import FINAL_CHECKS
from switchyard.soak.run import SoakOptions, run_soak

pytestmark = pytest.mark.integration


def test_a_short_soak_injects_faults_and_every_invariant_holds(tmp_path: Path) -> None:
    options = SoakOptions(
        minutes=0.5, seed=7, database="sqlite", results_dir=tmp_path, progress=False
    )
    report = run_soak(options)

    assert report.faults, "no fault was injected"
    assert report.workload["pay-full"] + report.workload["operator-command"] > 0
    assert set(report.checked) == set(FINAL_CHECKS)
    assert report.passed, report.table()
    document = json.loads(report.write(tmp_path).read_text())
    assert document["passed"] is True
    assert sum(document["faults_by_kind"].values()) == len(report.faults)
