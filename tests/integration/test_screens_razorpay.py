"""The Razorpay provider: the official SDK creates the Order against a local stand-in of the
Orders API, Checkout's callback is verified with the SDK, and money comes only from the
webhook. Real parts: a `switchyard run` stack, real HTTP."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.payments.webhook import sign_body
from cloud.web.messages import t
from cloud.web.providers import PaymentProviderError, RazorpayProvider, checkout_signature
from switchyard.pay import webhook_body
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.razorpay_standin import OrdersStandIn, orders_standin
from wire import RelayState

pytestmark = pytest.mark.integration

KEY_ID = "rzp_test_switchyard01"
KEY_SECRET = secrets.token_urlsafe(24)
DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def standin() -> Iterator[OrdersStandIn]:
    with orders_standin(KEY_ID, KEY_SECRET) as serving:
        yield serving


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, standin: OrdersStandIn) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("razorpay")
    running = start_stack(
        StackOptions(
            meters=6,
            gateways=1,
            port=free_port(),
            state_dir=state_dir,
            cloud_env={
                "SWITCHYARD_PAYMENT_PROVIDER": "razorpay",
                "SWITCHYARD_RAZORPAY_KEY_ID": KEY_ID,
                "SWITCHYARD_RAZORPAY_KEY_SECRET": KEY_SECRET,
                "SWITCHYARD_RAZORPAY_BASE_URL": standin.base_url,
            },
        )
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def web(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as client:
        yield client


def _total(web: httpx.Client, account_id: str) -> int:
    return int(web.get(f"/api/v1/accounts/{account_id}/dues").json()["total_payable_paise"])


async def test_sdk_order_and_signature_against_the_standin(standin: OrdersStandIn) -> None:
    provider = RazorpayProvider(KEY_ID, KEY_SECRET, standin.base_url)
    checkout = await provider.start("ACC000042", 123_400)
    order = standin.orders[-1]
    assert checkout.order_id == order["id"] and checkout.key_id == KEY_ID
    assert order["amount"] == 123_400 and order["currency"] == "INR"
    assert order["notes"] == {"account_id": "ACC000042"}
    wrong = RazorpayProvider(KEY_ID, "not-the-secret", standin.base_url)
    with pytest.raises(PaymentProviderError):
        await wrong.start("ACC000042", 123_400)


def test_pay_creates_an_order_for_the_total_and_the_page_opens_checkout(
    web: httpx.Client, stack: LocalStack, standin: OrdersStandIn
) -> None:
    account_id = stack.fleet.accounts[0].account_id  # the demo's first account is cut off
    total = _total(web, account_id)
    page = web.post("/pay", data={"account": account_id, "amount": f"{total / 100:.2f}"})
    assert page.status_code == 200, page.text
    order = standin.orders[-1]
    assert order["amount"] == total and order["notes"] == {"account_id": account_id}
    assert f'data-order="{order["id"]}"' in page.text and f'data-key="{KEY_ID}"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' https://checkout.razorpay.com;" in csp
    assert (
        web.post("/checkout/dev", data={"account": account_id, "amount_paise": "100"}).status_code
        == 404
    )


def test_callback_is_verified_and_credit_comes_only_from_the_webhook(
    web: httpx.Client, stack: LocalStack, standin: OrdersStandIn
) -> None:
    account = stack.fleet.accounts[0]
    assert account.relay == RelayState.DISCONNECTED
    total = _total(web, account.account_id)
    web.post("/pay", data={"account": account.account_id, "amount": f"{total / 100:.2f}"})
    order_id = standin.orders[-1]["id"]
    payment_id = f"pay_{secrets.token_hex(7)}"
    forged = {
        "razorpay_order_id": order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": sign_body(f"{order_id}|{payment_id}".encode(), "guessed-secret"),
    }
    refused = web.post("/checkout/razorpay/callback", data=forged)
    assert refused.status_code == 400 and t("callback_invalid", "en") in refused.text
    signed = forged | {"razorpay_signature": checkout_signature(order_id, payment_id, KEY_SECRET)}
    back = web.post("/checkout/razorpay/callback", data=signed)
    assert back.status_code == 303 and back.headers["location"] == f"/track/{payment_id}?lang=en"
    # The browser's word credits nothing: dues unchanged, the payment unknown until the webhook.
    assert _total(web, account.account_id) == total
    assert t("payment_unknown", "en") in web.get(back.headers["location"]).text
    body = webhook_body(account.account_id, total, payment_id)
    hook = web.post(
        "/api/v1/payments/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, stack.secrets.webhook_secret),
            "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(8)}",
        },
    )
    assert hook.status_code == 200 and hook.json()["status"] == "processed", hook.text
    deadline = time.monotonic() + DEADLINE_S
    page = ""
    while time.monotonic() < deadline:
        page = web.get(back.headers["location"]).text
        if re.search(r'id="outcome" class="outcome-on"', page):
            break
        time.sleep(0.05)
    assert 'class="outcome-on"' in page, page
    assert _total(web, account.account_id) == 0
