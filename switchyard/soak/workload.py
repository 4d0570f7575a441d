"""What the soak asks of the system while faults fly: payments of every awkward kind, operator
commands and one disconnection run, each resent until the cloud answers (as a payment gateway
and an operator's client would), and what the cloud accepted recorded in `Sent`."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from cloud.payments.webhook import sign_body
from switchyard.pay import webhook_body
from switchyard.soak.invariants import Sent, SentPayment
from switchyard.stack import LocalStack
from wire.messages import RelayState

_Request = Callable[[], httpx.Response]
_HTTP_TIMEOUT_S = 5.0
_RESEND_AFTER_S = 0.5
# Weights of the actions a workload step picks from.
ACTIONS = {
    "pay-full": 3,
    "pay-partial": 2,
    "pay-duplicate": 1,
    "pay-out-of-order": 1,
    "pay-unknown-account": 1,
    "operator-command": 2,
}
OPERATOR_POOL = 8


@dataclass(frozen=True)
class _Webhook:
    payment_id: str
    account_id: str
    amount_paise: int
    body: bytes
    event_id: str


class Workload:
    """Runs in its own thread until `stop()`; `sent` grows as the cloud accepts things."""

    def __init__(self, stack: LocalStack, seed: int, *, step_s: float = 0.4) -> None:
        self._stack = stack
        self._rng = random.Random(seed)
        self._step_s = step_s
        self.sent = Sent()
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self._accepted: list[_Webhook] = []
        self._stopping = threading.Event()
        self._give_up_at = float("inf")
        fleet = stack.fleet
        policy = {case.account_id for case in fleet.policy_cases}
        self._unpaid = [a.account_id for a in fleet.disconnected()]
        connected = [
            a
            for a in fleet.accounts
            if a.relay is RelayState.CONNECTED and a.account_id not in policy
        ]
        self._operated = {a.meter_id: "connect" for a in connected[:OPERATOR_POOL]}
        self._thread = threading.Thread(target=self._run, name="soak-workload", daemon=True)
        self._run_at_s = 0.0

    def start(self, disconnection_run_after_s: float) -> None:
        """Begin; the one disconnection run goes out after the given time."""
        self._run_at_s = time.monotonic() + disconnection_run_after_s
        self._thread.start()

    def stop(self, finish_within_s: float) -> None:
        """No new work; resend what is unanswered for at most `finish_within_s`, then return."""
        self._give_up_at = time.monotonic() + finish_within_s
        self._stopping.set()
        self._thread.join(timeout=finish_within_s + _HTTP_TIMEOUT_S * 2)

    def _run(self) -> None:
        with httpx.Client(base_url=self._stack.api_url, timeout=_HTTP_TIMEOUT_S) as client:
            while not self._stopping.is_set():
                if self._run_at_s and time.monotonic() >= self._run_at_s:
                    self._run_at_s = 0.0
                    self._disconnection_run(client)
                action = self._rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
                try:
                    if self._step(client, action):
                        self.counts[action] += 1
                except _GaveUp as exc:
                    self.errors.append(str(exc))
                    return
                self._stopping.wait(self._step_s)

    def _step(self, client: httpx.Client, action: str) -> bool:
        """Do one action; False when there was nothing to do it on."""
        if action == "operator-command":
            return self._operator_command(client)
        if action == "pay-duplicate":
            return self._duplicate(client)
        if action == "pay-unknown-account":
            self._send(client, self._webhook(f"ACC9{self._rng.randrange(10**5):05d}", 12_300))
            return True
        if not self._unpaid:
            return False
        account_id = self._rng.choice(self._unpaid)
        payable = self._payable(client, account_id)
        if payable <= 0:
            self._unpaid.remove(account_id)
            return False
        if action == "pay-partial":
            self._send(client, self._webhook(account_id, max(payable // 3, 100)))
        elif action == "pay-out-of-order":
            first = self._webhook(account_id, payable // 2, age_s=30)
            second = self._webhook(account_id, payable - payable // 2)
            self._send(client, second)  # the later payment arrives first
            self._send(client, first)
        else:
            self._send(client, self._webhook(account_id, payable))
        return True

    def _duplicate(self, client: httpx.Client) -> bool:
        if not self._accepted:
            return False
        original = self._rng.choice(self._accepted)
        if self._rng.random() < 0.5:
            self._send(client, original)  # the very same delivery, again
        else:  # the same payment in a new event, as a gateway's retry sends it
            self._send(client, _Webhook(**{**vars(original), "event_id": _event_id()}))
        return True

    def _operator_command(self, client: httpx.Client) -> bool:
        meter_id = self._rng.choice(sorted(self._operated))
        action = "disconnect" if self._operated[meter_id] == "connect" else "connect"
        operator = {"Authorization": f"Bearer {self._stack.secrets.operator_token}"}
        body = {"action": action, "reason": "soak"}
        response = self._retry(
            lambda: client.post(f"/api/v1/meters/{meter_id}/commands", json=body, headers=operator)
        )
        if response.status_code != 202:
            self.errors.append(f"operator {action} {meter_id}: {response.status_code}")
            return False
        self._operated[meter_id] = action
        return True

    def _disconnection_run(self, client: httpx.Client) -> None:
        operator = {"Authorization": f"Bearer {self._stack.secrets.operator_token}"}
        response = self._retry(
            lambda: client.post(
                "/api/v1/disconnection-runs", json={"dry_run": False}, headers=operator
            )
        )
        self.counts["disconnection-run"] += 1
        if response.status_code != 201:
            self.errors.append(f"disconnection run: {response.status_code} {response.text[:200]}")

    def _payable(self, client: httpx.Client, account_id: str) -> int:
        response = self._retry(lambda: client.get(f"/api/v1/accounts/{account_id}/dues"))
        return int(response.json()["total_payable_paise"])

    def _webhook(self, account_id: str, amount_paise: int, *, age_s: int = 0) -> _Webhook:
        payment_id = f"pay_{secrets.token_hex(7)}"
        event = json.loads(webhook_body(account_id, amount_paise, payment_id))
        event["created_at"] -= age_s
        body = json.dumps(event, separators=(",", ":")).encode()
        return _Webhook(payment_id, account_id, amount_paise, body, _event_id())

    def _send(self, client: httpx.Client, webhook: _Webhook) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(webhook.body, self._stack.secrets.webhook_secret),
            "X-Razorpay-Event-Id": webhook.event_id,
        }
        response = self._retry(
            lambda: client.post("/api/v1/payments/webhook", content=webhook.body, headers=headers)
        )
        if response.status_code != 200:
            self.errors.append(f"webhook {webhook.payment_id}: {response.status_code}")
            return
        if webhook.payment_id not in self.sent.payments:
            matched = any(a.account_id == webhook.account_id for a in self._stack.fleet.accounts)
            self.sent.payments[webhook.payment_id] = SentPayment(
                webhook.payment_id, webhook.account_id, webhook.amount_paise, matched
            )
            self.sent.paid_accounts.add(webhook.account_id)
            self._accepted.append(webhook)

    def _retry(self, request: _Request) -> httpx.Response:
        """Send until the cloud answers other than 5xx; it may be down or restarting."""
        while True:
            try:
                response = request()
            except httpx.HTTPError:
                pass
            else:
                if response.status_code < 500:
                    return response
            if time.monotonic() > self._give_up_at:
                raise _GaveUp("the cloud did not answer before the workload's deadline")
            time.sleep(_RESEND_AFTER_S)


class _GaveUp(RuntimeError):
    """The cloud stayed unreachable past the stop deadline."""


def _event_id() -> str:
    return f"evt_{secrets.token_hex(8)}"
