"""The consumer page in a real Chromium against a `switchyard run` stack on real parts: look up
a disconnected account in Hindi, pay through the test checkout, watch the power come back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cloud.web.messages import t
from cloud.web.money import format_paise, plain_rupees
from switchyard.demo import AccountRecord
from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.browser import (
    chromium,
    devanagari_fonts,
    screenshot,
    tab_to,
    unlabelled_controls,
)
from wire import RelayState

pytestmark = pytest.mark.integration

LOOKUPS_PER_MINUTE = 20
# Supply on must appear within this long after the checkout hands over, without a reload.
POWER_DEADLINE_MS = 2000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("screens")
    running = start_stack(
        StackOptions(
            meters=50,
            gateways=2,
            port=free_port(),
            state_dir=state_dir,
            disconnected_share=0.3,
            # Each DLMS exchange takes this long, so the timeline is still open when the page
            # opens and the events stream must carry the rest.
            link_latency_ms=60.0,
            cloud_env={"SWITCHYARD_LOOKUPS_PER_MINUTE": str(LOOKUPS_PER_MINUTE)},
        )
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(stack: LocalStack) -> Iterator[Browser]:
    # After the stack: Playwright's sync API keeps an event loop running in this thread, and
    # the stack seeds its database with asyncio.run.
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.api_url, viewport={"width": 390, "height": 844})
    opened = context.new_page()
    foreign: list[str] = []
    opened.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((stack.api_url, "data:"))
            else foreign.append(request.url)
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert foreign == [], f"the page reached beyond its own origin: {foreign}"


def _cut_off(stack: LocalStack, control_mode: int) -> list[AccountRecord]:
    found = [
        a
        for a in stack.fleet.accounts
        if a.relay == RelayState.DISCONNECTED and a.control_mode == control_mode
    ]
    assert found, f"the demo fleet has no disconnected mode-{control_mode} meter"
    return found


def _dues(stack: LocalStack, account_id: str) -> dict[str, object]:
    answer = httpx.get(f"{stack.api_url}/api/v1/accounts/{account_id}/dues", timeout=10.0)
    answer.raise_for_status()
    dues: dict[str, object] = answer.json()
    return dues


def _watch_power(page: Page, outcome_class: str) -> None:
    """On the timeline page: the outcome arrives by the event stream, never by a reload."""
    page.wait_for_url("**/track/pay_*")
    page.evaluate("window.__loaded_once = true")
    expect(page.locator("#outcome")).to_have_class(outcome_class, timeout=POWER_DEADLINE_MS)
    assert page.evaluate("window.__loaded_once === true"), "the page was reloaded"
    expect(page.locator('#timeline li[data-step="confirmed"]')).to_have_class("done")


def test_hindi_lookup_pay_and_supply_on_with_the_keyboard_alone(
    page: Page, stack: LocalStack
) -> None:
    assert devanagari_fonts(), "no Devanagari font: Hindi would render as boxes"
    account = _cut_off(stack, control_mode=2)[0]
    dues = _dues(stack, account.account_id)
    page.goto("/")
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    tab_to(page, "#lang-switch")
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    tab_to(page, "#account")
    page.keyboard.type(account.account_id)
    page.keyboard.press("Enter")
    total = page.locator("#total")
    expect(total).to_have_text(format_paise(int(str(dues["total_payable_paise"]))))
    expect(page.locator("#fee")).to_have_text("₹350.00")
    # Read now: once "Pay" navigates, this page's #total is gone.
    total_text = total.inner_text()
    assert "," in total_text, "a total over ₹1,000 is grouped"
    expect(page.locator("#supply")).to_have_text(t("supply_off", "hi"))
    assert unlabelled_controls(page) == []
    # Only what the public dues endpoint says: no name, no phone number.
    content = page.content()
    assert account.consumer_name not in content and str(account.phone) not in content
    screenshot(page, "consumer-dues-hi")
    tab_to(page, "#pay")
    page.keyboard.press("Enter")
    expect(page.locator("#checkout-amount")).to_have_text(total_text)
    screenshot(page, "checkout-dev")
    tab_to(page, "#checkout-pay")
    page.keyboard.press("Enter")
    page.wait_for_url("**/track/pay_*")
    assert page.locator("#timeline").get_attribute("data-finished") == "false", (
        "power was already back when the page opened: the live path went untested"
    )
    _watch_power(page, "outcome-on")
    expect(page.locator("#outcome")).to_contain_text("बिजली चालू")
    assert len(streams) == 1, f"one event stream, no polling: {streams}"
    assert _dues(stack, account.account_id)["relay"] == "connected"
    screenshot(page, "timeline-supply-on-hi")


def test_partial_payment_shows_what_is_left(page: Page, stack: LocalStack) -> None:
    account = _cut_off(stack, control_mode=2)[1]
    total = int(str(_dues(stack, account.account_id)["total_payable_paise"]))
    part = total // 2
    page.goto(f"/?lang=en&account={account.account_id}")
    page.fill("#amount", plain_rupees(part))
    page.click("#pay")
    page.click("#checkout-pay")
    page.wait_for_url("**/track/pay_*")
    remainder = t("outcome_partial", "en", amount=format_paise(total - part))
    expect(page.locator("#outcome")).to_have_text(remainder)
    screenshot(page, "timeline-partial-en")
    assert _dues(stack, account.account_id)["total_payable_paise"] == total - part


def test_mode_1_meter_tells_the_consumer_to_press_the_button(page: Page, stack: LocalStack) -> None:
    account = _cut_off(stack, control_mode=1)[0]
    page.goto(f"/?lang=hi&account={account.account_id}")
    page.click("#pay")
    page.click("#checkout-pay")
    _watch_power(page, "outcome-button")
    expect(page.locator("#outcome")).to_have_text(t("press_button", "hi"))
    page.goto(f"/?lang=en&account={account.account_id}")
    expect(page.locator("#press-button")).to_have_text(t("press_button", "en"))
    screenshot(page, "consumer-press-button-en")


def test_security_headers_and_lookups_are_rate_limited(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as client:
        home = client.get("/")
        csp = home.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert home.headers["x-content-type-options"] == "nosniff"
        statuses = [
            client.get("/?account=ACC000002").status_code for _ in range(LOOKUPS_PER_MINUTE)
        ]
        assert statuses[-1] == 429, statuses
        refused = client.get("/?account=ACC000002")
        assert refused.status_code == 429
        assert t("rate_limited", "en") in refused.text
        assert 'id="total"' not in refused.text
