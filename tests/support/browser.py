"""Playwright on Debian's Chromium for the screens' tests, and screenshots at two widths."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screens"
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless (never `playwright install`: no download here)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def devanagari_fonts() -> list[str]:
    """Font families fontconfig offers for Hindi (what Chromium renders Devanagari with)."""
    listed = subprocess.run(
        ["fc-list", ":lang=hi", "family"], capture_output=True, text=True, check=True
    )
    return [line for line in listed.stdout.splitlines() if line.strip()]


def screenshot(page: Page, name: str) -> list[Path]:
    """The page at phone and desktop widths, written to docs/screens/NAME-WIDTH.png."""
    SCREENS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    before = page.viewport_size
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        path = SCREENS_DIR / f"{name}-{label}.png"
        page.screenshot(path=path, full_page=True)
        written.append(path)
    if before is not None:
        page.set_viewport_size(before)
    return written


def tab_to(page: Page, selector: str, max_presses: int = 25) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def unlabelled_controls(page: Page) -> list[str]:
    """Visible inputs, selects, buttons and links without an accessible name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
        .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
        .filter(el => {
          const byFor = el.id && document.querySelector(`label[for="${el.id}"]`);
          const text = (el.innerText || el.value || '').trim();
          const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          const isField = ['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName);
          return isField ? !(byFor || named || el.closest('label')) : !(text || named);
        })
        .map(el => el.outerHTML.slice(0, 120))"""
    )
    return found
