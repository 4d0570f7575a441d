"""`switchyard pay`: act as the payment gateway — send a correctly signed Razorpay-style webhook,
then watch the meter until its power is back and say how long it took."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import httpx

from cloud.payments.webhook import sign_body


@dataclass(frozen=True)
class PaymentReceipt:
    """What the webhook answered, and when power came back (if we waited)."""

    status: str
    payment_id: str
    amount_paise: int
    command_id: str | None
    power_restored_s: float | None
    relay: str | None


def webhook_body(account_id: str, amount_paise: int, payment_id: str) -> bytes:
    """A payment.captured event for this account, as Razorpay would send it."""
    event = {
        "entity": "event",
        "account_id": "acc_switchyard_demo",
        "event": "payment.captured",
        "contains": ["payment"],
        "created_at": int(time.time()),
        "payload": {
            "payment": {
                "entity": {
                    "id": payment_id,
                    "entity": "payment",
                    "amount": amount_paise,
                    "currency": "INR",
                    "status": "captured",
                    "method": "upi",
                    "notes": {"account_id": account_id},
                }
            }
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def total_payable(client: httpx.Client, account_id: str) -> int:
    """What the consumer owes now, from the public dues endpoint."""
    response = client.get(f"/api/v1/accounts/{account_id}/dues")
    response.raise_for_status()
    return int(response.json()["total_payable_paise"])


def pay(
    api_url: str,
    webhook_secret: str,
    account_id: str,
    amount_paise: int | None = None,
    *,
    wait_s: float = 10.0,
) -> PaymentReceipt:
    """Send the webhook and, if the dues are cleared, wait until the relay reports connected."""
    with httpx.Client(base_url=api_url, timeout=10.0) as client:
        amount = amount_paise if amount_paise is not None else total_payable(client, account_id)
        if amount <= 0:
            raise ValueError(f"nothing to pay on {account_id} (total payable is {amount} paise)")
        payment_id = f"pay_{secrets.token_hex(7)}"
        body = webhook_body(account_id, amount, payment_id)
        started = time.perf_counter()
        response = client.post(
            "/api/v1/payments/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": sign_body(body, webhook_secret),
                "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"webhook refused: {response.status_code} {response.text}")
        answer = response.json()
        restored_s, relay = None, None
        if answer.get("command_id") and wait_s > 0:
            restored_s, relay = _wait_for_power(client, account_id, started, wait_s)
        return PaymentReceipt(
            answer["status"], payment_id, amount, answer.get("command_id"), restored_s, relay
        )


def _wait_for_power(
    client: httpx.Client, account_id: str, started: float, wait_s: float
) -> tuple[float | None, str | None]:
    relay: str | None = None
    while time.perf_counter() - started < wait_s:
        dues = client.get(f"/api/v1/accounts/{account_id}/dues").json()
        relay = dues.get("relay")
        if relay in ("connected", "ready_for_reconnection"):
            return time.perf_counter() - started, relay
        time.sleep(0.01)
    return None, relay
