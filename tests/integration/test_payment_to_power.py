"""Payment to power on real parts: Mosquitto, the simulator, gateway processes and the cloud
process behind real HTTP, all started by `switchyard run`'s own code with demo data."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.payments.webhook import sign_body
from switchyard.pay import webhook_body
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.policy_stack import command_when_final

pytestmark = pytest.mark.integration

DEADLINE_S = 15.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("stack")
    running = start_stack(
        StackOptions(meters=60, gateways=2, port=free_port(), state_dir=state_dir)
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _send_webhook(
    stack: LocalStack,
    api: httpx.Client,
    body: bytes,
    *,
    event_id: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    return api.post(
        "/api/v1/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature or sign_body(body, stack.secrets.webhook_secret),
            "X-Razorpay-Event-Id": event_id or f"evt_{secrets.token_hex(8)}",
        },
    )


def _dues(api: httpx.Client, account_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/accounts/{account_id}/dues")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _probe(stack: LocalStack, dcu_id: str) -> MeterLinkProbe:
    return MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)


def _disconnected(stack: LocalStack, index: int) -> tuple[str, str, str]:
    account = stack.fleet.disconnected()[index]
    return account.account_id, account.meter_id, account.dcu_id


def test_full_payment_reconnects_the_meter_and_clears_the_dues(
    stack: LocalStack, api: httpx.Client
) -> None:
    account_id, meter_id, dcu_id = _disconnected(stack, 0)
    owed = _dues(api, account_id)
    assert owed["total_payable_paise"] > 0 and owed["reconnection_fee_paise"] == 35_000
    assert owed["relay"] == "disconnected"

    response = _send_webhook(
        stack, api, webhook_body(account_id, owed["total_payable_paise"], "pay_full_0001")
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    command = command_when_final(stack, api, response.json()["command_id"], DEADLINE_S)

    assert command["state"] == "SUCCEEDED"
    assert [t["to_state"] for t in command["transitions"]] == [
        "QUEUED",
        "SENT",
        "DELIVERED",
        "SUCCEEDED",
    ]
    meter = api.get(f"/api/v1/meters/{meter_id}", headers=_auth(stack.secrets.viewer_token))
    assert meter.json()["reported_relay"] == "connected"
    assert _dues(api, account_id)["total_payable_paise"] == 0
    probe = _probe(stack, dcu_id)
    try:
        assert probe.status(meter_id).relay.value == "connected"
        assert probe.relay_events(meter_id) == [302]
    finally:
        probe.close()


def test_partial_payment_is_credited_and_the_meter_stays_off(
    stack: LocalStack, api: httpx.Client
) -> None:
    account_id, meter_id, _ = _disconnected(stack, 1)
    owed = _dues(api, account_id)["total_payable_paise"]
    response = _send_webhook(stack, api, webhook_body(account_id, 10_000, "pay_partial_0001"))
    assert response.json() == {
        "status": "processed",
        "payment_id": "pay_partial_0001",
        "command_id": None,
    }
    after = _dues(api, account_id)
    assert after["total_payable_paise"] == owed - 10_000
    assert after["relay"] == "disconnected"
    commands = api.get(
        "/api/v1/commands", params={"meter_id": meter_id}, headers=_auth(stack.secrets.viewer_token)
    ).json()["items"]
    assert commands == []


def test_replayed_webhook_and_reused_payment_id_credit_once(
    stack: LocalStack, api: httpx.Client
) -> None:
    account_id, meter_id, _ = _disconnected(stack, 2)
    owed = _dues(api, account_id)["total_payable_paise"]
    body = webhook_body(account_id, owed, "pay_dup_0001")
    first = _send_webhook(stack, api, body, event_id="evt_dup_0001")
    again = _send_webhook(stack, api, body, event_id="evt_dup_0001")
    new_event_same_payment = _send_webhook(stack, api, body, event_id="evt_dup_0002")
    assert [r.json()["status"] for r in (first, again, new_event_same_payment)] == [
        "processed",
        "duplicate",
        "duplicate",
    ]
    command_when_final(stack, api, first.json()["command_id"], DEADLINE_S)
    dues = _dues(api, account_id)
    assert (dues["total_payable_paise"], dues["credit_paise"]) == (0, 0), "credited exactly once"
    commands = api.get(
        "/api/v1/commands", params={"meter_id": meter_id}, headers=_auth(stack.secrets.viewer_token)
    ).json()["items"]
    assert len(commands) == 1


def test_bad_signature_records_nothing_and_malformed_body_is_400(
    stack: LocalStack, api: httpx.Client
) -> None:
    account_id, _, _ = _disconnected(stack, 3)
    owed = _dues(api, account_id)["total_payable_paise"]
    body = webhook_body(account_id, owed, "pay_forged_0001")
    for signature in (
        sign_body(body, "not-the-secret"),
        "",
        sign_body(body + b" ", stack.secrets.webhook_secret),
    ):
        forged = _send_webhook(
            stack, api, body, event_id="evt_forged_0001", signature=signature or "x"
        )
        assert forged.status_code == 401
        assert forged.json()["code"] == "unauthorized"
    assert _dues(api, account_id)["total_payable_paise"] == owed

    malformed = b'{"entity": "event", "event": "payment.captured", "payload": {}}'
    response = _send_webhook(stack, api, malformed)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_webhook"
    not_json = _send_webhook(stack, api, b"{not json")
    assert not_json.status_code == 400

    # Nothing was recorded for the forged event id: the genuine delivery is processed.
    genuine = _send_webhook(stack, api, body, event_id="evt_forged_0001")
    assert genuine.json()["status"] == "processed"


def test_payment_for_an_unknown_account_is_kept_unmatched(
    stack: LocalStack, api: httpx.Client
) -> None:
    response = _send_webhook(stack, api, webhook_body("ACC999999", 5_000, "pay_unmatched_1"))
    assert response.status_code == 200
    assert response.json()["status"] == "unmatched"
    replay = _send_webhook(stack, api, webhook_body("ACC999999", 5_000, "pay_unmatched_1"))
    assert replay.json()["status"] == "duplicate"


def test_operator_disconnect_opens_the_relay_and_viewers_cannot_command(
    stack: LocalStack, api: httpx.Client
) -> None:
    connected = next(
        a for a in stack.fleet.accounts if a.relay.value == "connected" and a.control_mode == 2
    )
    path = f"/api/v1/meters/{connected.meter_id}/commands"
    body = {"action": "disconnect", "reason": "field inspection"}
    assert api.post(path, json=body).status_code == 401
    assert api.post(path, json=body, headers=_auth("not-a-token")).status_code == 401
    as_viewer = api.post(path, json=body, headers=_auth(stack.secrets.viewer_token))
    assert as_viewer.status_code == 403 and as_viewer.json()["code"] == "forbidden"

    accepted = api.post(path, json=body, headers=_auth(stack.secrets.operator_token))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["origin"] == "operator"
    command = command_when_final(stack, api, accepted.json()["command_id"], DEADLINE_S)
    assert (command["state"], command["relay_result"], command["event_code"]) == (
        "SUCCEEDED",
        "disconnected",
        301,
    )
    probe = _probe(stack, connected.dcu_id)
    try:
        assert probe.relay_events(connected.meter_id) == [301]
    finally:
        probe.close()


def test_mode_1_meter_ends_ready_for_reconnection(stack: LocalStack, api: httpx.Client) -> None:
    mode_1 = next(a for a in stack.fleet.accounts if a.control_mode == 1)
    operator = _auth(stack.secrets.operator_token)
    path = f"/api/v1/meters/{mode_1.meter_id}/commands"
    off = api.post(path, json={"action": "disconnect", "reason": "test"}, headers=operator)
    switched_off = command_when_final(stack, api, off.json()["command_id"], DEADLINE_S)
    assert switched_off["state"] == "SUCCEEDED"
    on = api.post(path, json={"action": "connect", "reason": "test"}, headers=operator)
    command = command_when_final(stack, api, on.json()["command_id"], DEADLINE_S)
    assert (command["state"], command["relay_result"]) == ("SUCCEEDED", "ready_for_reconnection")
    probe = _probe(stack, mode_1.dcu_id)
    try:
        assert probe.status(mode_1.meter_id).relay.value == "ready_for_reconnection"
    finally:
        probe.close()


def test_api_errors_are_json_with_stable_codes(stack: LocalStack, api: httpx.Client) -> None:
    viewer = _auth(stack.secrets.viewer_token)
    missing = api.get("/api/v1/accounts/ACC999998/dues")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    bad_action = api.post(
        "/api/v1/meters/MTR000002/commands",
        json={"action": "explode", "reason": "x"},
        headers=_auth(stack.secrets.operator_token),
    )
    assert (bad_action.status_code, bad_action.json()["code"]) == (422, "validation_error")
    bad_cursor = api.get("/api/v1/meters", params={"cursor": "%%%"}, headers=viewer)
    assert bad_cursor.status_code == 422
    health = api.get("/healthz").json()
    assert (health["database"], health["broker"]) == ("ok", "connected")
    gateways = api.get("/api/v1/gateways", headers=viewer).json()
    assert {g["dcu_id"]: g["online"] for g in gateways} == {"DCU01": True, "DCU02": True}
    metrics = api.get("/metrics").text
    assert "switchyard_payment_webhooks_total" in metrics


def test_stack_file_lets_switchyard_pay_find_the_stack(stack: LocalStack) -> None:
    described = json.loads((stack.options.state_dir / "stack.json").read_text())
    assert described["api_url"] == stack.api_url
    assert described["webhook_secret"] == stack.secrets.webhook_secret
