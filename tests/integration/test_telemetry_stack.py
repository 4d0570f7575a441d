"""Telemetry in the whole local stack (`switchyard run`'s own code): the readings API on the
embedded default, and relay events, presence and payment-to-power points in a real TSDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from cloud.payments.webhook import sign_body
from switchyard.pay import webhook_body
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from switchyard.victoria import Victoria, start_victoria
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


def _pay_in_full(stack: LocalStack, api: httpx.Client, account_id: str) -> dict[str, Any]:
    owed = api.get(f"/api/v1/accounts/{account_id}/dues").json()["total_payable_paise"]
    body = webhook_body(account_id, owed, f"pay_{account_id}_{time.monotonic_ns()}")
    response = api.post(
        "/api/v1/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, stack.secrets.webhook_secret),
            "X-Razorpay-Event-Id": f"evt_{time.monotonic_ns()}",
        },
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        meters=12,
        gateways=2,
        port=free_port(),
        state_dir=tmp_path_factory.mktemp("embedded"),
        telemetry_interval_s=0.3,
    )
    running = start_stack(options)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def viewer(embedded: LocalStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {embedded.secrets.viewer_token}"}
    with httpx.Client(base_url=embedded.api_url, headers=headers, timeout=10.0) as client:
        yield client


def _readings(client: httpx.Client, meter_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/meters/{meter_id}/readings", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_readings_api_serves_a_meters_readings_in_time_order(
    embedded: LocalStack, viewer: httpx.Client
) -> None:
    connected = next(a for a in embedded.fleet.accounts if a.relay.value == "connected")
    page = wait_for(
        "readings in the cloud database",
        lambda: (
            body if len((body := _readings(viewer, connected.meter_id))["items"]) >= 4 else None
        ),
    )
    items = page["items"]
    times = [datetime.fromisoformat(item["at"]) for item in items]
    assert times == sorted(times) and len(set(times)) == len(times)
    for item in items:
        assert item["relay"] == "connected" and item["active_power_w"] != 0
        assert 200 < item["voltage_v"] < 260 and 49.5 < item["frequency_hz"] < 50.5
        assert item["historical"] is False
    assert items[-1]["import_wh"] >= items[0]["import_wh"]

    window = _readings(viewer, connected.meter_id, **{"from": items[1]["at"], "to": items[3]["at"]})
    assert [item["at"] for item in window["items"]] == [items[1]["at"], items[2]["at"]]

    first = _readings(viewer, connected.meter_id, limit="2", **{"from": items[0]["at"]})
    second = _readings(
        viewer,
        connected.meter_id,
        limit="2",
        cursor=first["next_cursor"],
        **{"from": items[0]["at"]},
    )
    assert [i["at"] for i in first["items"] + second["items"]] == [i["at"] for i in items[:4]]


def test_readings_api_refuses_what_it_should(embedded: LocalStack, viewer: httpx.Client) -> None:
    meter_id = embedded.fleet.accounts[0].meter_id
    anonymous = httpx.get(f"{embedded.api_url}/api/v1/meters/{meter_id}/readings", timeout=10.0)
    assert anonymous.status_code == 401
    assert viewer.get("/api/v1/meters/NOSUCHMETER/readings").status_code == 404
    now = datetime.now().astimezone()
    backwards = viewer.get(
        f"/api/v1/meters/{meter_id}/readings",
        params={"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "validation_error"


def test_a_paid_meter_shows_power_in_its_readings(
    embedded: LocalStack, viewer: httpx.Client
) -> None:
    account = embedded.fleet.disconnected()[-1]
    before = wait_for(
        "readings of the disconnected meter",
        lambda: body["items"] if (body := _readings(viewer, account.meter_id))["items"] else None,
    )
    assert all(i["relay"] == "disconnected" and i["active_power_w"] == 0 for i in before)
    with httpx.Client(base_url=embedded.api_url, timeout=10.0) as api:
        assert _pay_in_full(embedded, api, account.account_id)["status"] == "processed"

    def powered() -> dict[str, Any] | None:
        items = _readings(viewer, account.meter_id)["items"]
        return items[-1] if items[-1]["relay"] == "connected" else None

    assert wait_for("power in the readings", powered)["active_power_w"] != 0


@pytest.fixture(scope="module")
def victoria_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    running = start_victoria(tmp_path_factory.mktemp("victoria"))
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture(scope="module")
def with_influx(
    tmp_path_factory: pytest.TempPathFactory, victoria_module: Victoria
) -> Iterator[LocalStack]:
    options = StackOptions(
        meters=12,
        gateways=2,
        port=free_port(),
        state_dir=tmp_path_factory.mktemp("influx"),
        telemetry_interval_s=0.3,
        influx_url=victoria_module.url,
    )
    running = start_stack(options)
    try:
        yield running
    finally:
        running.stop()


def test_payment_to_power_relay_events_and_presence_reach_the_tsdb(
    with_influx: LocalStack, victoria_module: Victoria
) -> None:
    account = with_influx.fleet.disconnected()[0]
    with httpx.Client(base_url=with_influx.api_url, timeout=10.0) as api:
        command_id = _pay_in_full(with_influx, api, account.account_id)["command_id"]
        viewer = {"Authorization": f"Bearer {with_influx.secrets.viewer_token}"}
        readings = api.get(f"/api/v1/meters/{account.meter_id}/readings", headers=viewer)
        assert readings.status_code == 409 and readings.json()["code"] == "readings_in_influxdb"

    def sample(metric: str, **labels: str) -> tuple[dict[str, str], int, float] | None:
        for found in victoria_module.samples(metric):
            if all(found[0].get(k) == v for k, v in labels.items()):
                return found
        return None

    latency = wait_for(
        "payment-to-power point",
        lambda: sample(
            "command_payment_to_power_ms",
            meter_id=account.meter_id,
            outcome="SUCCEEDED",
            origin="payment",
            action="connect",
        ),
    )
    assert 0 < latency[2] < 30_000
    assert command_id
    wait_for("relay connected event", lambda: sample("meter_event_seq", code="302"))
    for dcu_id in with_influx.fleet.dcu_ids:
        state = wait_for(
            "gateway presence", lambda d=dcu_id: sample("gateway_state_online", dcu_id=d)
        )
        assert state[2] == 1
    wait_for("readings", lambda: sample("meter_reading_voltage_v", meter_id=account.meter_id))
