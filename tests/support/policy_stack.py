"""Talking to a running local stack in policy tests: relays read back from the simulator, runs,
commands, fees, payments, and overdue accounts made through the API."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from cloud.onboarding import AccountRecord
from cloud.payments.webhook import sign_body
from cloud.policy.calendar import load_calendar
from switchyard.pay import webhook_body
from switchyard.stack import LocalStack
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.wait import wait_until

ACTIVE_STATES = frozenset({"QUEUED", "SENT", "DELIVERED"})
DEADLINE_S = 20.0
IST = ZoneInfo("Asia/Kolkata")


def open_tuesday_after(now: datetime) -> datetime:
    """11:00 in India on the first Tuesday after `now` that is not a listed holiday."""
    calendar = load_calendar()
    day = now.astimezone(IST).date() + timedelta(days=1)
    while day.weekday() != 1 or calendar.name_of(day) is not None:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 11, 0, tzinfo=IST)


def operator(stack: LocalStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.secrets.operator_token}"}


def viewer(stack: LocalStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.secrets.viewer_token}"}


def relays(stack: LocalStack) -> dict[str, str]:
    """Every meter's relay, read back from the simulator over the meter link."""
    found: dict[str, str] = {}
    for dcu_id in stack.fleet.dcu_ids:
        probe = MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)
        try:
            found.update({s.meter_id: s.relay.value for s in probe.roster})
        finally:
            probe.close()
    return found


def relay_events(stack: LocalStack, dcu_id: str, meter_id: str) -> list[int]:
    probe = MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)
    try:
        return probe.relay_events(meter_id)
    finally:
        probe.close()


def start_run(stack: LocalStack, api: httpx.Client, *, dry_run: bool) -> dict[str, Any]:
    response = api.post(
        "/api/v1/disconnection-runs", json={"dry_run": dry_run}, headers=operator(stack)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_when_settled(stack: LocalStack, api: httpx.Client, run_id: str) -> dict[str, Any]:
    """The run once none of its commands is still queued or in flight."""

    def run() -> dict[str, Any]:
        return dict(api.get(f"/api/v1/disconnection-runs/{run_id}", headers=viewer(stack)).json())

    def settled(body: dict[str, Any]) -> bool:
        return not ACTIVE_STATES & set(body["command_states"])

    return wait_until(f"run {run_id} to settle", run, settled, timeout_s=DEADLINE_S)


def command_when_final(
    stack: LocalStack, api: httpx.Client, command_id: str, timeout_s: float = DEADLINE_S
) -> dict[str, Any]:
    """The command once it has left QUEUED/SENT/DELIVERED."""

    def command() -> dict[str, Any]:
        return dict(api.get(f"/api/v1/commands/{command_id}", headers=viewer(stack)).json())

    def final(body: dict[str, Any]) -> bool:
        return body["state"] not in ACTIVE_STATES

    return wait_until(f"command {command_id} to finish", command, final, timeout_s=timeout_s)


def fees(stack: LocalStack, api: httpx.Client, account_id: str) -> list[str]:
    statement = api.get(f"/api/v1/accounts/{account_id}/statement", headers=viewer(stack))
    assert statement.status_code == 200, statement.text
    return [line["reference"] for line in statement.json()["lines"] if line["kind"] == "fee"]


def pay_all(stack: LocalStack, api: httpx.Client, account_id: str, payment_id: str) -> str | None:
    owed = api.get(f"/api/v1/accounts/{account_id}/dues").json()["total_payable_paise"]
    body = webhook_body(account_id, owed, payment_id)
    response = api.post(
        "/api/v1/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, stack.secrets.webhook_secret),
            "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
        },
    )
    assert response.json()["status"] == "processed", response.text
    command_id = response.json()["command_id"]
    return str(command_id) if command_id else None


def make_overdue(
    stack: LocalStack, api: httpx.Client, account: AccountRecord, policy_now: datetime
) -> None:
    """A bill due 25 days before the policy's now, and a notice served 20 days before it."""
    due = (policy_now - timedelta(days=25)).date()
    bill = {
        "bill_id": f"BILL-{account.account_id}-{secrets.token_hex(3)}",
        "amount_paise": 250_000,
        "period_start": (due - timedelta(days=45)).isoformat(),
        "period_end": (due - timedelta(days=15)).isoformat(),
        "due_date": due.isoformat(),
        "issued_at": (policy_now - timedelta(days=40)).isoformat(),
    }
    path = f"/api/v1/accounts/{account.account_id}"
    assert api.post(f"{path}/bills", json=bill, headers=operator(stack)).status_code == 201
    notice = {
        "channel": "hand_delivery",
        "served_at": (policy_now - timedelta(days=20)).isoformat(),
    }
    assert api.post(f"{path}/notices", json=notice, headers=operator(stack)).status_code == 201


def plain_accounts(stack: LocalStack, dcu_id: str) -> list[AccountRecord]:
    """Connected accounts with no demo case, a meter that can disconnect, in the cohort."""
    cased = {case.account_id for case in stack.fleet.policy_cases}
    return [
        a
        for a in stack.fleet.accounts
        if a.dcu_id == dcu_id
        and a.account_id not in cased
        and a.relay.value == "connected"
        and a.control_mode != 0
        and a.installed_on is not None
        and 2020 <= a.installed_on.year <= 2024
    ]
