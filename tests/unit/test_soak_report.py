"""The soak's JSON report: one file per soak, whatever else ran beside it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from switchyard.soak.report import SoakReport


def test_soaks_on_both_databases_started_together_keep_both_reports(tmp_path: Path) -> None:
    started_at = datetime(2026, 12, 3, 18, 11, 52, tzinfo=UTC)
    paths = {
        SoakReport(started_at, 30.0, 11, database, deadline_s=120.0).write(tmp_path)
        for database in ("sqlite", "postgresql")
    }
    assert len(paths) == 2
    assert {json.loads(path.read_text())["database"] for path in paths} == {
        "sqlite",
        "postgresql",
    }
