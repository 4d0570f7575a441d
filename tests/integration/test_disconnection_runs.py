"""Disconnection runs on real parts: Mosquitto, simulated meters, gateway processes and the
cloud behind real HTTP, started by `switchyard run`'s own code with its demo data. The policy's
clock is fixed to an open Tuesday morning so the time window never depends on when tests run."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.policy_stack import (
    command_when_final,
    fees,
    make_overdue,
    open_tuesday_after,
    operator,
    pay_all,
    plain_accounts,
    relay_events,
    relays,
    run_when_settled,
    start_run,
    viewer,
)

pytestmark = pytest.mark.integration

POLICY_NOW = open_tuesday_after(datetime.now(UTC))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("policy-stack")
    running = start_stack(
        StackOptions(
            meters=60, gateways=2, port=free_port(), state_dir=state_dir, policy_clock=POLICY_NOW
        )
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def relays_at_start(stack: LocalStack) -> dict[str, str]:
    return relays(stack)


@pytest.fixture(scope="module")
def dry_run(
    stack: LocalStack, api: httpx.Client, relays_at_start: dict[str, str]
) -> dict[str, Any]:
    run = start_run(stack, api, dry_run=True)
    run["relays_after"] = relays(stack)
    run["commands_after"] = api.get("/api/v1/commands", headers=viewer(stack)).json()["items"]
    return run


@pytest.fixture(scope="module")
def real_run(stack: LocalStack, api: httpx.Client, dry_run: dict[str, Any]) -> dict[str, Any]:
    """The demo's real run once settled, with what it left behind and a second run after it.

    Every test that changes the stack depends on this fixture, so the dry run and this run see
    the demo data as it started, whatever order the tests run in.
    """
    run = run_when_settled(stack, api, start_run(stack, api, dry_run=False)["run_id"])
    cut = [r["account_id"] for r in run["results"] if r["command_id"]]
    run["relays_after"] = relays(stack)
    run["dues_after"] = {a: api.get(f"/api/v1/accounts/{a}/dues").json() for a in cut}
    run["second_run"] = start_run(stack, api, dry_run=False)
    return run


def test_dry_run_reports_counts_by_outcome_and_rule_and_switches_nothing(
    stack: LocalStack, dry_run: dict[str, Any], relays_at_start: dict[str, str]
) -> None:
    fleet = stack.fleet
    eligible = fleet.cases("eligible")
    assert eligible, "the demo has eligible accounts"
    assert dry_run["dry_run"] is True
    assert dry_run["policy_time"] == POLICY_NOW.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert dry_run["counts_by_outcome"] == {
        "disconnect": len(eligible),
        "blocked": len(fleet.policy_cases) - len(eligible),
        "already_disconnected": len(fleet.disconnected()),
    }
    expected_rules = {
        rule: len(fleet.cases(rule))
        for rule in {case.case for case in fleet.policy_cases} - {"eligible"}
    }
    assert dry_run["counts_by_rule"] == expected_rules
    assert set(expected_rules) == {
        "protected_consumer",
        "open_dispute",
        "notice_missing",
        "notice_period_running",
        "cohort_not_enabled",
        "meter_cannot_disconnect",
    }
    by_account = {r["account_id"]: r for r in dry_run["results"]}
    for case in fleet.policy_cases:
        result = by_account[case.account_id]
        assert result["rule"] == (None if case.case == "eligible" else case.case), result
        assert result["command_id"] is None
    assert dry_run["relays_after"] == relays_at_start
    assert dry_run["commands_after"] == []


def test_real_run_disconnects_exactly_the_eligible_meters(
    stack: LocalStack, real_run: dict[str, Any], relays_at_start: dict[str, str]
) -> None:
    eligible = set(stack.fleet.cases("eligible"))
    assert real_run["counts_by_outcome"]["disconnect"] == len(eligible)
    assert real_run["command_states"] == {"SUCCEEDED": len(eligible)}
    cut = {r["meter_id"] for r in real_run["results"] if r["outcome"] == "disconnect"}
    assert {
        r["account_id"] for r in real_run["results"] if r["outcome"] == "disconnect"
    } == eligible

    now = real_run["relays_after"]
    changed = {meter for meter, relay in now.items() if relay != relays_at_start[meter]}
    assert changed == cut
    assert {now[meter] for meter in cut} == {"disconnected"}
    for account in stack.fleet.accounts:
        if account.meter_id in cut:
            assert relay_events(stack, account.dcu_id, account.meter_id)[:1] == [301]


def test_the_fee_is_levied_once_per_disconnection(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    cut = {r["account_id"]: r["command_id"] for r in real_run["results"] if r["command_id"]}
    for account_id, command_id in cut.items():
        assert fees(stack, api, account_id) == [command_id]
        dues = real_run["dues_after"][account_id]
        assert (dues["reconnection_fee_paise"], dues["relay"]) == (35_000, "disconnected")

    rows = {r["account_id"]: r for r in real_run["second_run"]["results"]}
    assert {rows[a]["outcome"] for a in cut} == {"already_disconnected"}
    assert {rows[a]["command_id"] for a in cut} == {None}
    for account_id, command_id in cut.items():
        assert fees(stack, api, account_id) == [command_id]


def test_a_dcu_over_the_share_limit_waits_for_an_operator(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    chosen = plain_accounts(stack, "DCU02")[:7]  # 7 of its 30 meters: 23 % > 20 %
    assert len(chosen) == 7
    for account in chosen:
        make_overdue(stack, api, account, POLICY_NOW)
    meters = {a.meter_id for a in chosen}

    run = start_run(stack, api, dry_run=False)
    held = {r["meter_id"]: r for r in run["results"] if r["outcome"] == "quarantined"}
    assert set(held) == meters
    assert {r["rule"] for r in held.values()} == {"dcu_share_exceeded"}
    assert run["quarantines"] == [
        {
            "dcu_id": "DCU02",
            "meter_count": 30,
            "would_disconnect": 7,
            "status": "pending",
            "created_at": run["quarantines"][0]["created_at"],
            "decided_at": None,
            "decided_by": None,
        }
    ]
    assert run["command_states"] == {}
    assert {relays(stack)[m] for m in meters} == {"connected"}

    confirm = f"/api/v1/disconnection-runs/{run['run_id']}/quarantines/DCU02/confirm"
    assert api.post(confirm, headers=viewer(stack)).status_code == 403
    confirmed = api.post(confirm, headers=operator(stack))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["quarantines"][0]["status"] == "confirmed"
    settled = run_when_settled(stack, api, run["run_id"])
    assert settled["command_states"] == {"SUCCEEDED": 7}
    assert {relays(stack)[m] for m in meters} == {"disconnected"}
    for row in settled["results"]:
        if row["meter_id"] in meters:
            assert fees(stack, api, row["account_id"]) == [row["command_id"]]
    again = api.post(confirm, headers=operator(stack))
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_a_payment_racing_the_disconnect_leaves_the_meter_connected(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    account = plain_accounts(stack, "DCU01")[0]
    make_overdue(stack, api, account, POLICY_NOW)
    gateway = next(p for p in stack.processes if p.name == "gateway DCU01")
    # A stopped gateway: the broker holds the disconnect, the cloud still sees DCU01 online.
    gateway.signal(signal.SIGSTOP)
    try:
        run = start_run(stack, api, dry_run=False)
        (row,) = [r for r in run["results"] if r["account_id"] == account.account_id]
        assert row["outcome"] == "disconnect"
        cut = row["command_id"]
        state = api.get(f"/api/v1/commands/{cut}", headers=viewer(stack)).json()["state"]
        assert state in ("QUEUED", "SENT")
        connect = pay_all(stack, api, account.account_id, f"pay_race_{secrets.token_hex(4)}")
        assert connect is not None
    finally:
        gateway.signal(signal.SIGCONT)

    assert command_when_final(stack, api, connect)["state"] == "SUCCEEDED"
    assert api.get(f"/api/v1/commands/{cut}", headers=viewer(stack)).json()["state"] == (
        "SUPERSEDED"
    )
    assert relays(stack)[account.meter_id] == "connected"
    assert fees(stack, api, account.account_id) == []
    assert api.get(f"/api/v1/accounts/{account.account_id}/dues").json()["total_payable_paise"] == 0


def test_paying_after_the_disconnect_reconnects_and_tells_the_consumer(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    row = next(r for r in real_run["results"] if r["outcome"] == "disconnect")
    connect = pay_all(stack, api, row["account_id"], f"pay_after_{secrets.token_hex(4)}")
    assert connect is not None
    assert command_when_final(stack, api, connect)["state"] == "SUCCEEDED"
    assert relays(stack)[row["meter_id"]] in ("connected", "ready_for_reconnection")
    messages = api.get(
        "/api/v1/notifications",
        params={"account_id": row["account_id"]},
        headers=viewer(stack),
    ).json()["items"]
    assert [m["kind"] for m in messages][-2:] == ["disconnected", "power_restored"]
    assert fees(stack, api, row["account_id"]) == [row["command_id"]]


def test_policy_is_visible_and_the_kill_switch_stops_real_runs(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    policy = api.get("/api/v1/policy", headers=viewer(stack)).json()
    assert policy["settings"]["notice_days"] == 15
    assert policy["settings"]["max_dcu_share_percent"] == 20
    assert (policy["settings"]["window_start"], policy["settings"]["window_end"]) == (
        "10:00:00",
        "17:00:00",
    )
    assert policy["clock_fixed"] is True
    assert {h["date"][:4] for h in policy["holidays"]} == {"2026", "2027"}

    switch = "/api/v1/policy/kill-switch"
    assert (
        api.put(switch, json={"engaged": True, "reason": "x"}, headers=viewer(stack)).status_code
        == 403
    )
    engaged = api.put(switch, json={"engaged": True, "reason": "drill"}, headers=operator(stack))
    assert engaged.status_code == 200 and engaged.json()["engaged"] is True
    try:
        refused = api.post(
            "/api/v1/disconnection-runs", json={"dry_run": False}, headers=operator(stack)
        )
        assert (refused.status_code, refused.json()["code"]) == (409, "kill_switch_engaged")
        assert start_run(stack, api, dry_run=True)["kill_switch_engaged"] is True
    finally:
        api.put(switch, json={"engaged": False, "reason": "drill over"}, headers=operator(stack))
    missing = api.post("/api/v1/disconnection-runs", json={}, headers=operator(stack))
    assert (missing.status_code, missing.json()["code"]) == (422, "validation_error")
    listed = api.get("/api/v1/disconnection-runs", headers=viewer(stack)).json()
    first = next(run for run in listed if run["run_id"] == real_run["run_id"])
    assert first["counts_by_outcome"] == real_run["counts_by_outcome"]
    assert first["results"] == [] and first["dry_run"] is False
    assert (
        api.get(
            "/api/v1/disconnection-runs/00000000-0000-0000-0000-000000000000", headers=viewer(stack)
        ).status_code
        == 404
    )


def test_the_command_line_prints_a_dry_run(stack: LocalStack, real_run: dict[str, Any]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "switchyard.cli",
            "disconnection-run",
            "--dry-run",
            "--state-dir",
            str(stack.options.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "disconnection dry run" in done.stdout
    assert "by blocking rule" in done.stdout and "protected_consumer" in done.stdout


def _dry_rule(stack: LocalStack, api: httpx.Client, account_id: str) -> tuple[str, str | None]:
    run = start_run(stack, api, dry_run=True)
    (row,) = [r for r in run["results"] if r["account_id"] == account_id]
    return row["outcome"], row["rule"]


def test_bills_adjustments_protections_disputes_and_notices_through_the_api(
    stack: LocalStack, api: httpx.Client, real_run: dict[str, Any]
) -> None:
    account, unnoticed = plain_accounts(stack, "DCU01")[1:3]
    path = f"/api/v1/accounts/{account.account_id}"
    due = (POLICY_NOW - timedelta(days=25)).date()
    bill = {
        "bill_id": f"BILL-API-{account.account_id}",
        "amount_paise": 180_000,
        "period_start": (due - timedelta(days=45)).isoformat(),
        "period_end": (due - timedelta(days=15)).isoformat(),
        "due_date": due.isoformat(),
        "issued_at": (POLICY_NOW - timedelta(days=40)).isoformat(),
    }
    assert api.post(f"{path}/bills", json=bill, headers=operator(stack)).status_code == 201
    assert api.post(f"{path}/bills", json=bill, headers=operator(stack)).status_code == 200
    changed = api.post(f"{path}/bills", json={**bill, "amount_paise": 1}, headers=operator(stack))
    assert (changed.status_code, changed.json()["code"]) == (409, "duplicate_reference")
    rupees = api.post(
        f"{path}/bills", json={**bill, "amount_paise": 1800.5}, headers=operator(stack)
    )
    assert (rupees.status_code, rupees.json()["code"]) == (422, "validation_error")
    unknown = api.post("/api/v1/accounts/ACC999999/bills", json=bill, headers=operator(stack))
    assert unknown.status_code == 404

    credit = {
        "reference": f"ADJ-{account.account_id}",
        "amount_paise": -30_000,
        "reason": "meter fault",
    }
    assert api.post(f"{path}/adjustments", json=credit, headers=operator(stack)).status_code == 201
    zero = api.post(
        f"{path}/adjustments", json={**credit, "amount_paise": 0}, headers=operator(stack)
    )
    assert zero.status_code == 422
    statement = api.get(f"{path}/statement", headers=viewer(stack)).json()
    assert [line["kind"] for line in statement["lines"]][-2:] == ["bill", "adjustment"]
    assert statement["closing_balance_paise"] == sum(
        line["amount_paise"] for line in statement["lines"]
    )

    assert _dry_rule(stack, api, account.account_id) == ("blocked", "notice_missing")
    served = api.post(f"{path}/notices", json={}, headers=operator(stack))
    assert served.status_code == 201 and served.json()["channel"] == "dev-log"
    again = api.post(f"{path}/notices", json={}, headers=operator(stack))
    assert (again.status_code, again.json()["code"]) == (409, "already_served")
    assert _dry_rule(stack, api, account.account_id) == ("blocked", "notice_period_running")

    make_overdue(stack, api, unnoticed, POLICY_NOW)
    other = f"/api/v1/accounts/{unnoticed.account_id}"
    protection = api.post(
        f"{other}/protections",
        json={"kind": "life_support", "reason": "oxygen concentrator"},
        headers=operator(stack),
    )
    assert protection.status_code == 201
    dispute = api.post(
        f"{other}/disputes",
        json={"kind": "payment_under_protest", "reason": "meter reading", "amount_paise": 50_000},
        headers=operator(stack),
    )
    assert dispute.status_code == 201
    assert _dry_rule(stack, api, unnoticed.account_id) == ("blocked", "protected_consumer")
    ended = api.delete(
        f"{other}/protections/{protection.json()['protection_id']}", headers=operator(stack)
    )
    assert ended.status_code == 200 and ended.json()["ended_at"] is not None
    assert _dry_rule(stack, api, unnoticed.account_id) == ("blocked", "open_dispute")
    resolved = api.post(
        f"{other}/disputes/{dispute.json()['dispute_id']}/resolve",
        json={"resolution": "reading confirmed"},
        headers=operator(stack),
    )
    assert resolved.status_code == 200
    assert _dry_rule(stack, api, unnoticed.account_id) == ("disconnect", None)
    # Leave it held back, so no other test's real run cuts it.
    api.post(
        f"{other}/protections",
        json={"kind": "essential_service", "reason": "clinic"},
        headers=operator(stack),
    )
    assert _dry_rule(stack, api, unnoticed.account_id) == ("blocked", "protected_consumer")
    assert api.post("/api/v1/notice-runs", headers=viewer(stack)).status_code == 403
    assert api.post("/api/v1/notice-runs", headers=operator(stack)).status_code == 200
