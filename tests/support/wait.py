"""Waiting, with a deadline, for a condition a test cannot be told about: the one poll loop.

A probe answers None (or False) while the condition does not hold yet, and anything else once it
does; that answer is returned. `wait_until` instead reads a value and asks `done(value)`, so a
timeout can show the value that kept it waiting. Exceptions listed in `ignoring` count as "not
yet" (a server still starting); any other exception fails the test at once. At the deadline an
AssertionError names what was awaited, for how long, and the last value or error seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

T = TypeVar("T")
V = TypeVar("V")

DEADLINE_S = 30.0
EVERY_S = 0.05
_NOTHING_YET = object()


class _Watch:
    """The deadline of one wait, and what its probe last answered."""

    def __init__(self, what: str, timeout_s: float, ignoring: tuple[type[BaseException], ...]):
        self.what = what
        self.timeout_s = timeout_s
        self.ignoring = ignoring
        self.deadline = time.monotonic() + timeout_s
        self.last: object = _NOTHING_YET

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def failure(self) -> AssertionError:
        """The error that ends a wait whose deadline passed."""
        seen = (
            "nothing (the probe never answered)" if self.last is _NOTHING_YET else _shown(self.last)
        )
        return AssertionError(
            f"timed out after {self.timeout_s:g} s waiting for {self.what}; last seen: {seen}"
        )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 2000 else f"{text[:2000]}... ({len(text)} characters)"


def _holds(value: object) -> bool:
    return value is not None and value is not False


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout_s: float = DEADLINE_S,
    every_s: float = EVERY_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `probe` every `every_s` until it answers something other than None or False."""
    answer = wait_until(
        what, probe, _holds, timeout_s=timeout_s, every_s=every_s, ignoring=ignoring
    )
    return cast(T, answer)


def wait_until(
    what: str,
    read: Callable[[], V],
    done: Callable[[V], bool],
    *,
    timeout_s: float = DEADLINE_S,
    every_s: float = EVERY_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> V:
    """Call `read` every `every_s` until `done` accepts what it read; returns that value."""
    watch = _Watch(what, timeout_s, ignoring)
    while True:
        try:
            value = read()
        except ignoring as exc:
            watch.last = exc
        else:
            watch.last = value
            if done(value):
                return value
        if watch.remaining_s() <= 0:
            raise watch.failure()
        time.sleep(min(every_s, watch.remaining_s()))


@overload
async def wait_for_async(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = ...,
    every_s: float = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
    changed: asyncio.Event | None = ...,
) -> T: ...


@overload
async def wait_for_async(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout_s: float = ...,
    every_s: float = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
    changed: asyncio.Event | None = ...,
) -> T: ...


async def wait_for_async(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout_s: float = DEADLINE_S,
    every_s: float = EVERY_S,
    ignoring: tuple[type[BaseException], ...] = (),
    changed: asyncio.Event | None = None,
) -> Any:
    """`wait_for` in a coroutine; `probe` may be a coroutine function. With `changed`, the
    probe runs again as soon as that event is set instead of every `every_s`."""
    watch = _Watch(what, timeout_s, ignoring)
    while True:
        if changed is not None:
            changed.clear()  # before probing, so a change during the probe is not missed
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
        except ignoring as exc:
            watch.last = exc
        else:
            watch.last = value
            if _holds(value):
                return value
        if watch.remaining_s() <= 0:
            raise watch.failure()
        await _pause(changed, min(every_s, watch.remaining_s()))


async def _pause(changed: asyncio.Event | None, pause_s: float) -> None:
    """Sleep `pause_s`, or less if `changed` is set meanwhile."""
    if changed is None:
        await asyncio.sleep(pause_s)
        return
    try:
        async with asyncio.timeout(pause_s):
            await changed.wait()
    except TimeoutError:
        pass


def holds_for(
    what: str,
    read: Callable[[], V],
    holds: Callable[[V], bool],
    *,
    duration_s: float,
    every_s: float = EVERY_S,
) -> V:
    """Check `holds(read())` every `every_s` for `duration_s`: a thing that must not happen
    in a window (no attempt spent while a gateway is away). Fails at the first value that
    breaks it; returns the last value read."""
    end = time.monotonic() + duration_s
    while True:
        value = read()
        if not holds(value):
            raise AssertionError(f"{what} stopped holding; seen: {_shown(value)}")
        left_s = end - time.monotonic()
        if left_s <= 0:
            return value
        time.sleep(min(every_s, left_s))
