"""`switchyard soak`: chaos with invariants (see docs/soak.md). Kept light: the CLI imports it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_soak_parser(sub: Any) -> None:
    """Add `soak` to the CLI's subcommands (`sub` is argparse's subparsers action)."""
    soak: argparse.ArgumentParser = sub.add_parser(
        "soak", help="chaos with invariants: faults under load, then checks (docs/soak.md)"
    )
    soak.add_argument("--minutes", type=float, default=2.0, help="time under faults (2)")
    soak.add_argument("--seed", type=int, default=1, help="fixes faults and workload (1)")
    soak.add_argument(
        "--database", choices=("sqlite", "postgresql"), default="sqlite", help="cloud database"
    )
    soak.add_argument("--results-dir", type=Path, default=Path(".switchyard/soak"))
    soak.add_argument("--no-progress", action="store_true", help="no progress output")
    soak.add_argument(
        "--keep-state", action="store_true", help="keep the stack's state dir (logs, stores)"
    )
