"""The operator console in a real Chromium against a `switchyard run` stack: a dry run's counts
by rule, the kill switch (with its confirmation) stopping a real run, a real run quarantined
and a DCU confirmed and switched while the live feed shows its commands; a viewer sees all and
can do nothing, and forged POSTs are refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from switchyard.procs import free_port
from switchyard.stack import LocalStack, StackOptions, start_stack
from tests.support.browser import chromium, screenshot, tab_to, unlabelled_controls
from tests.support.policy_stack import open_tuesday_after, viewer
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

POLICY_NOW = open_tuesday_after(datetime.now(UTC))
# The demo's eligible meters exceed this share of their DCU: a real run is quarantined.
SHARE_LIMIT_PERCENT = 5
FEED_DEADLINE_MS = 15_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir: Path = tmp_path_factory.mktemp("console")
    running = start_stack(
        StackOptions(
            meters=60,
            gateways=2,
            port=free_port(),
            state_dir=state_dir,
            policy_clock=POLICY_NOW,
            cloud_env={"SWITCHYARD_POLICY_MAX_DCU_SHARE_PERCENT": str(SHARE_LIMIT_PERCENT)},
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
def browser(stack: LocalStack) -> Iterator[Browser]:
    # After the stack (its seeding uses asyncio.run; Playwright's sync API holds a loop).
    with chromium() as launched:
        yield launched


def _signed_in(browser: Browser, stack: LocalStack, token: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=stack.api_url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto("/console")
    tab_to(page, "#token")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_be_visible()
    assert token not in page.url
    cookie = next(c for c in context.cookies() if c["name"] == "sy_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in cookie["value"]
    return context, page


def _csrf(page: Page) -> str:
    return page.locator('form[action="/console/sign-out"] input[name="csrf"]').input_value()


def _runs(api: httpx.Client, stack: LocalStack) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/disconnection-runs", headers=viewer(stack))
    answer.raise_for_status()
    runs: list[dict[str, Any]] = answer.json()
    return runs


def test_viewer_sees_everything_and_can_act_on_nothing(
    browser: Browser, stack: LocalStack, api: httpx.Client
) -> None:
    context, page = _signed_in(browser, stack, stack.secrets.viewer_token)
    try:
        for path in ("/console", "/console/runs", "/console/kill-switch", "/console/audit"):
            page.goto(path)
            assert unlabelled_controls(page) == [], path
            assert page.locator("form[method=post]").count() == 1, "only sign-out is offered"
        assert page.locator("#dry-run, #real-run, #kill-form").count() == 0
        forged = page.request.post(
            "/console/runs", form={"csrf": _csrf(page), "mode": "real"}, max_redirects=0
        )
        assert forged.status == 403
        engage = {"csrf": _csrf(page), "engaged": "true", "reason": "x", "confirmed": "yes"}
        assert page.request.post("/console/kill-switch", form=engage).status == 403
        assert _runs(api, stack) == []
        page.goto("/console/audit")
        expect(page.locator("#audit")).to_contain_text("access.denied")
    finally:
        context.close()


def test_forged_posts_without_the_csrf_token_are_refused(
    browser: Browser, stack: LocalStack, api: httpx.Client
) -> None:
    context, page = _signed_in(browser, stack, stack.secrets.operator_token)
    try:
        no_token = page.request.post("/console/runs", form={"csrf": "", "mode": "real"})
        wrong = page.request.post("/console/runs", form={"csrf": "guess", "mode": "real"})
        assert (no_token.status, wrong.status) in [(403, 403), (422, 403)]
        # Another site cannot send the cookie (SameSite=Strict) and so is not signed in at all.
        with httpx.Client(base_url=stack.api_url) as outsider:
            refused = outsider.post("/console/runs", data={"csrf": _csrf(page), "mode": "real"})
        assert refused.status_code == 401
        assert _runs(api, stack) == []
    finally:
        context.close()


def test_dry_run_kill_switch_and_a_confirmed_quarantine(
    browser: Browser, stack: LocalStack, api: httpx.Client
) -> None:
    context, page = _signed_in(browser, stack, stack.secrets.operator_token)
    feed = context.new_page()
    try:
        screenshot(page, "console-fleet")
        page.goto("/console/runs")
        assert unlabelled_controls(page) == []
        page.click("#dry-run")
        page.wait_for_url("**/console/runs/*")
        run = _runs(api, stack)[0]
        assert run["dry_run"] and run["counts_by_rule"]
        rules = page.locator("#counts-by-rule tr")
        expect(rules).to_have_count(len(run["counts_by_rule"]))
        for rule, count in run["counts_by_rule"].items():
            row = page.locator("#counts-by-rule tr", has=page.locator("th", has_text=rule))
            expect(row.locator("td")).to_have_text(str(count))
        screenshot(page, "console-dry-run")

        _kill_switch(page, engage=True)
        page.goto("/console/runs")
        page.click("#real-run")
        expect(page.locator("#run-error")).to_contain_text("kill switch")
        assert all(r["dry_run"] for r in _runs(api, stack)), "no real run while engaged"
        _kill_switch(page, engage=False)

        feed.goto("/console/commands")
        page.goto("/console/runs")
        page.click("#real-run")
        page.wait_for_url("**/console/runs/*")
        real = _runs(api, stack)[0]
        assert not real["dry_run"] and real["quarantines"], real
        expect(page.locator("#quarantines tr[data-dcu]")).to_have_count(len(real["quarantines"]))
        dcu_id = real["quarantines"][0]["dcu_id"]
        detail = api.get(
            f"/api/v1/disconnection-runs/{real['run_id']}?outcome=quarantined",
            headers=viewer(stack),
        ).json()
        held = [r["meter_id"] for r in detail["results"] if r["dcu_id"] == dcu_id]
        assert held, detail
        screenshot(page, "console-quarantine")
        page.click(f"#confirm-{dcu_id}")
        status = page.locator(f'#quarantines tr[data-dcu="{dcu_id}"] .status')
        expect(status).to_have_text("confirmed")
        for meter_id in held:
            row = feed.locator("#command-feed tbody tr", has_text=meter_id)
            expect(row.filter(has_text="SUCCEEDED").first).to_be_visible(timeout=FEED_DEADLINE_MS)
            expect(row.first).to_contain_text("disconnect")
        screenshot(feed, "console-commands")
        wait_for(
            "the confirmed DCU's meters to report disconnected",
            lambda: (
                all(
                    api.get(f"/api/v1/meters/{m}", headers=viewer(stack)).json()["reported_relay"]
                    == "disconnected"
                    for m in held
                )
                or None
            ),
        )
        other = [r["meter_id"] for r in detail["results"] if r["dcu_id"] != dcu_id]
        for meter_id in other:
            meter = api.get(f"/api/v1/meters/{meter_id}", headers=viewer(stack)).json()
            assert meter["desired_relay"] == "connected", "an unconfirmed DCU stays untouched"
        page.goto(f"/console/meters/{held[0]}")
        expect(page.locator("#desired")).to_contain_text("disconnected")
        expect(page.locator(".transitions").first).to_contain_text("SUCCEEDED")
        screenshot(page, "console-meter")
        page.goto("/console/audit")
        screenshot(page, "console-audit")
    finally:
        context.close()


def _kill_switch(page: Page, *, engage: bool) -> None:
    page.goto("/console/kill-switch")
    page.fill("#kill-reason", "storm over the city" if engage else "storm passed")
    page.click("#kill-toggle")
    expect(page.locator("#kill-confirm")).to_be_visible()
    if engage:
        screenshot(page, "console-kill-switch-confirm")
    page.click("#kill-confirm-yes")
    expect(page.locator("#kill-state")).to_contain_text("engaged" if engage else "released")
