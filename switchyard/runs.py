"""`switchyard disconnection-run`: start a run (or a dry run) through the API and print its
counts by outcome and by blocking rule."""

from __future__ import annotations

from typing import Any

import httpx


class RunRequestError(RuntimeError):
    """The API refused or failed the run; carries its `{code, message}`."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.code = code


def start_run(
    api_url: str, token: str, *, dry_run: bool, timeout_s: float = 120.0
) -> dict[str, Any]:
    """POST /api/v1/disconnection-runs and return the run as the API reports it."""
    with httpx.Client(base_url=api_url, timeout=timeout_s) as client:
        response = client.post(
            "/api/v1/disconnection-runs",
            json={"dry_run": dry_run},
            headers={"Authorization": f"Bearer {token}"},
        )
    if response.status_code != 201:
        try:
            error = response.json()
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "error", response.text[:200]
        raise RunRequestError(response.status_code, code, message)
    run: dict[str, Any] = response.json()
    return run


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def describe_run(run: dict[str, Any], api_url: str) -> str:
    """A short human report of a run."""
    kind = "dry run" if run["dry_run"] else "run"
    lines = [
        f"disconnection {kind} {run['run_id']}",
        f"  rules evaluated at {run['policy_time']}",
        f"  overdue accounts  {run['total']}",
        f"  by outcome        {_counts(run['counts_by_outcome'])}",
        f"  by blocking rule  {_counts(run['counts_by_rule'])}",
    ]
    if run["kill_switch_engaged"]:
        lines.append("  the kill switch is engaged: a real run would be refused")
    if run["command_states"]:
        lines.append(f"  commands          {_counts(run['command_states'])}")
    for quarantine in run["quarantines"]:
        lines.append(
            f"  quarantined {quarantine['dcu_id']}: {quarantine['would_disconnect']} of "
            f"{quarantine['meter_count']} meters ({quarantine['status']})"
        )
        if quarantine["status"] == "pending":
            lines.append(
                f"    confirm: POST {api_url}/api/v1/disconnection-runs/{run['run_id']}"
                f"/quarantines/{quarantine['dcu_id']}/confirm"
            )
    lines.append(f"  details: GET {api_url}/api/v1/disconnection-runs/{run['run_id']}")
    return "\n".join(lines)
