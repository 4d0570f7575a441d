"""The soak's verdict: a table on the terminal, a JSON file, and the exit code."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from switchyard.soak.faults import KINDS, Injected
from switchyard.soak.invariants import FINAL_CHECKS, Violation


@dataclass
class SoakReport:
    """Everything one soak did and found."""

    started_at: datetime
    minutes: float
    seed: int
    database: str
    faults: list[Injected] = field(default_factory=list)
    workload: Counter[str] = field(default_factory=Counter)
    # invariant name -> how many times it was checked
    checked: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    converged_s: float | None = None
    deadline_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No violation, and the system settled within the deadline."""
        return not self.violations and self.converged_s is not None

    def table(self) -> str:
        """Faults by kind, invariants with checks and violations, the first violation."""
        faults = Counter(fault.kind for fault in self.faults)
        broken = Counter(v.invariant for v in self.violations)
        lines = [f"soak: {self.minutes:g} min, seed {self.seed}, {self.database}", ""]
        lines += [f"{'fault injected':<28}{'count':>8}", "-" * 36]
        lines += [f"{kind:<28}{faults[kind]:>8}" for kind in KINDS]
        lines += [f"{'total':<28}{sum(faults.values()):>8}", ""]
        lines += [f"{'workload':<28}{'count':>8}", "-" * 36]
        lines += [f"{name:<28}{count:>8}" for name, count in sorted(self.workload.items())]
        lines += ["", f"{'invariant':<28}{'checked':>8}{'violations':>12}", "-" * 48]
        for name in FINAL_CHECKS:
            lines.append(f"{name:<28}{self.checked[name]:>8}{broken[name]:>12}")
        settled = (
            f"settled {self.converged_s:.1f}s after the last fault healed"
            if self.converged_s is not None
            else f"NOT settled within {self.deadline_s:.0f}s of the last fault healing"
        )
        lines += ["", settled, *self.notes]
        if self.violations:
            lines += ["", f"FIRST VIOLATION: {self.violations[0].describe()}"]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON document."""
        return {
            "started_at": self.started_at.isoformat(),
            "command": ["switchyard", *sys.argv[1:]],
            "minutes": self.minutes,
            "seed": self.seed,
            "database": self.database,
            "passed": self.passed,
            "faults_by_kind": dict(Counter(fault.kind for fault in self.faults)),
            "faults": [asdict(fault) for fault in self.faults],
            "workload": dict(self.workload),
            "checked": dict(self.checked),
            "converged_s": self.converged_s,
            "deadline_s": self.deadline_s,
            "violations": [asdict(v) for v in self.violations],
            "notes": self.notes,
        }

    def write(self, results_dir: Path) -> Path:
        """Write the JSON report; answer its path."""
        results_dir.mkdir(parents=True, exist_ok=True)
        # The database is in the name: soaks on both, started together, keep both reports.
        name = f"soak-{self.started_at:%Y%m%dT%H%M%SZ}-{self.database}-seed{self.seed}.json"
        path = results_dir / name
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return path
