"""Meter time: wall time, optionally running faster so a demo lives through a day in minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from wire.clock import now_ms as wall_now_ms


class Clock(Protocol):
    """Anything that tells meter time in Unix milliseconds and never runs backwards."""

    def now_ms(self) -> int:
        """The current meter time."""
        ...


class ScaledClock:
    """Meter time that starts at wall time and then runs `time_scale` times as fast."""

    __slots__ = ("_monotonic_ns", "_origin_mono_ns", "_origin_ms", "_time_scale")

    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        origin_ms: int | None = None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._time_scale = time_scale
        self._monotonic_ns = monotonic_ns
        self._origin_ms = wall_now_ms() if origin_ms is None else origin_ms
        # Elapsed time comes from the monotonic clock, so an NTP step cannot run energy backwards.
        self._origin_mono_ns = monotonic_ns()

    @property
    def time_scale(self) -> float:
        """Meter seconds per wall second."""
        return self._time_scale

    def now_ms(self) -> int:
        """The current meter time."""
        elapsed_ns = self._monotonic_ns() - self._origin_mono_ns
        return self._origin_ms + int(elapsed_ns * self._time_scale) // 1_000_000


class ManualClock:
    """A clock that moves only when told to: for tests and for replaying a day."""

    __slots__ = ("_now_ms",)

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        """The current meter time."""
        return self._now_ms

    def advance(self, delta_ms: int) -> int:
        """Move time forward by `delta_ms` and answer the new time."""
        if delta_ms < 0:
            raise ValueError(f"a clock does not run backwards (delta_ms={delta_ms})")
        self._now_ms += delta_ms
        return self._now_ms
