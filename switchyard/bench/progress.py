"""A progress bar on a terminal; without one (CI, a pipe), a plain line now and then."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

_BAR_WIDTH = 30
_PLAIN_EVERY_S = 5.0


class Progress:
    """Shows how far a phase has got; `update` may be called as often as you like."""

    def __init__(
        self, stream: TextIO | None = None, *, enabled: bool = True, interactive: bool | None = None
    ) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        if interactive is None:
            interactive = self._stream.isatty() and not os.environ.get("CI")
        self._interactive = interactive
        self._label = ""
        self._total = 0.0
        self._started = 0.0
        self._last_shown = 0.0
        self._last_line = ""

    def start(self, label: str, total: float) -> None:
        """Begin a phase of `total` units."""
        self._label, self._total = label, max(total, 1e-9)
        self._started = self._last_shown = time.monotonic()
        if self._enabled and not self._interactive:
            self._print(f"{label}: started")

    def update(self, done: float, note: str = "") -> None:
        """Show that `done` units are finished."""
        if not self._enabled:
            return
        now = time.monotonic()
        share = min(done / self._total, 1.0)
        elapsed_s = now - self._started
        if self._interactive:
            if now - self._last_shown < 0.1 and share < 1.0:
                return
            filled = int(share * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            line = f"\r{self._label} [{bar}] {share:6.1%} {elapsed_s:5.1f}s {note}"
            self._stream.write(line.ljust(len(self._last_line)))
            self._stream.flush()
            self._last_line = line
        elif now - self._last_shown >= _PLAIN_EVERY_S:
            self._print(f"{self._label}: {share:.0%} after {elapsed_s:.0f}s {note}".rstrip())
        self._last_shown = now

    def finish(self, note: str = "") -> None:
        """End the phase."""
        if not self._enabled:
            return
        elapsed_s = time.monotonic() - self._started
        if self._interactive:
            self._stream.write("\n")
        self._print(f"{self._label}: done in {elapsed_s:.1f}s {note}".rstrip())
        self._last_line = ""

    def _print(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
