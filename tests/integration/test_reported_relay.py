"""The relay state the cloud reports stays true to the meter through a broker restart under
payments: real Mosquitto (SIGKILLed and restarted), gateway processes, simulator and cloud."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.onboarding import AccountRecord
from cloud.payments.webhook import sign_body
from switchyard.pay import webhook_body
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.fast_timers import FAST_CLOUD as SHARED_FAST_CLOUD
from tests.support.meterlink_probe import MeterLinkProbe
from tests.support.stack_api import StackApi
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

# The cloud reconnects faster than in the other fault tests.
FAST_CLOUD = {
    **SHARED_FAST_CLOUD,
    "SWITCHYARD_MQTT_RECONNECT_MIN_S": "0.1",
    "SWITCHYARD_MQTT_RECONNECT_MAX_S": "0.5",
}
# The gateways keep their default reconnect backoff (0.5 s doubling): after an outage of seconds
# the cloud is back first and has queued its commands in their sessions when they return, so
# those commands run while each gateway reads its roster for the birth.
FAST_GATEWAY = {"SWITCHYARD_MQTT_KEEPALIVE_S": "5"}
PAYMENTS_PER_S = 20.0
# Paid before the broker is killed, and by the time it is restarted (about 4 s of outage).
KILL_AFTER_PAID = 40
RESTART_AFTER_PAID = KILL_AFTER_PAID + int(4 * PAYMENTS_PER_S)
PAID_ACCOUNTS = RESTART_AFTER_PAID + 40
DEADLINE_S = 60.0


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[LocalStack]:
    """A stack whose accounts almost all start disconnected, with readings far apart.

    Telemetry every 10 minutes: within the test only what gateways report about commands and
    births can put the reported state right, so its ordering is what is tested.
    """
    options = StackOptions(
        meters=2 * PAID_ACCOUNTS,
        gateways=2,
        port=free_port(),
        state_dir=tmp_path / "stack",
        database_url=database_url,
        link_latency_ms=20.0,
        telemetry_interval_s=600.0,
        disconnected_share=0.9,
        cloud_env=FAST_CLOUD,
        gateway_env=FAST_GATEWAY,
    )
    running = start_stack(options)
    try:
        yield running
    finally:
        running.stop()


class Payer:
    """Pays accounts' whole dues at a steady rate from a thread, keeping each command id."""

    def __init__(self, stack: LocalStack, accounts: list[AccountRecord]) -> None:
        self._stack = stack
        self._accounts = accounts
        self.commands: dict[str, str] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="payer", daemon=True)

    @property
    def paid(self) -> int:
        """Accounts paid so far."""
        return len(self.commands)

    def start(self) -> None:
        """Start paying."""
        self._thread.start()

    def join(self) -> None:
        """Wait until every account is paid; re-raise what went wrong in the thread."""
        self._thread.join(timeout=DEADLINE_S)
        assert not self._thread.is_alive(), "payments did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self._stack.api_url, timeout=10.0) as http:
                started = time.monotonic()
                for n, account in enumerate(self._accounts):
                    time.sleep(max(0.0, started + n / PAYMENTS_PER_S - time.monotonic()))
                    self.commands[account.account_id] = self._pay(http, account)
        except BaseException as exc:
            self.error = exc

    def _pay(self, http: httpx.Client, account: AccountRecord) -> str:
        dues = http.get(f"/api/v1/accounts/{account.account_id}/dues").json()
        owed_paise = dues["total_payable_paise"]
        body = webhook_body(account.account_id, owed_paise, f"pay_{account.account_id}")
        response = http.post(
            "/api/v1/payments/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": sign_body(body, self._stack.secrets.webhook_secret),
                "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
            },
        )
        assert response.status_code == 200, response.text
        command_id = response.json()["command_id"]
        assert command_id, response.text
        return str(command_id)


def _real_relays(stack: LocalStack, accounts: list[AccountRecord]) -> dict[str, str]:
    """Each account's relay state as its simulated meter holds it, read over the meter link."""
    relays: dict[str, str] = {}
    for dcu_id in stack.fleet.dcu_ids:
        probe = MeterLinkProbe("127.0.0.1", stack.link_port, dcu_id)
        try:
            for account in accounts:
                if account.dcu_id == dcu_id:
                    relays[account.account_id] = probe.status(account.meter_id).relay.value
        finally:
            probe.close()
    return relays


def _shown_relays(api: StackApi, accounts: list[AccountRecord]) -> dict[str, tuple[str, str]]:
    """Each account's relay as the cloud shows it: on /dues, and on the meter's API."""
    shown: dict[str, tuple[str, str]] = {}
    for account in accounts:
        dues = api.http.get(f"/api/v1/accounts/{account.account_id}/dues").json()
        meter = api.meter(account.meter_id)
        shown[account.account_id] = (dues["relay"], meter["reported_relay"])
    return shown


def test_broker_restart_under_payments_leaves_every_reported_relay_true(
    stack: LocalStack,
) -> None:
    assert stack.broker is not None
    api = StackApi(stack)
    accounts = [a for a in stack.fleet.disconnected() if a.control_mode != 0][:PAID_ACCOUNTS]
    assert len(accounts) == PAID_ACCOUNTS, "the fleet has too few disconnected accounts"
    payer = Payer(stack, accounts)
    payer.start()
    wait_for("payments before the outage", lambda: True if payer.paid >= KILL_AFTER_PAID else None)
    # The gateways' sessions must be in the broker's persistence for it to queue commands there.
    saved = stack.broker.workdir / "mosquitto.db"
    wait_for("the broker's sessions saved", lambda: True if saved.exists() else None)
    stack.broker.process.kill()
    # The outage lasts while payments keep coming: about four seconds of them.
    wait_for(
        "payments during the outage",
        lambda: True if payer.paid >= RESTART_AFTER_PAID or payer.error else None,
    )
    stack.broker.restart()
    payer.join()

    finals = api.wait_final(list(payer.commands.values()), timeout_s=DEADLINE_S)
    assert {c["state"] for c in finals} == {"SUCCEEDED"}, [
        (c["meter_id"], c["state"], c["detail"]) for c in finals if c["state"] != "SUCCEEDED"
    ]
    real = _real_relays(stack, accounts)
    assert set(real.values()) <= {"connected", "ready_for_reconnection"}, real
    expected = {account_id: (relay, relay) for account_id, relay in real.items()}

    def all_true() -> bool | None:
        return True if _shown_relays(api, accounts) == expected else None

    try:
        wait_for("every paid account's reported relay to match its meter", all_true, timeout_s=20.0)
    except AssertionError:
        shown = _shown_relays(api, accounts)
        wrong = {a: (shown[a], real[a]) for a in real if shown[a] != expected[a]}
        raise AssertionError(f"{len(wrong)} of {len(real)} accounts shown wrong: {wrong}") from None
    api.close()
