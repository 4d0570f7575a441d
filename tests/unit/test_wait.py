"""The tests' one wait-with-deadline helper: what it returns, and what a timeout says."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.support.wait import holds_for, wait_for, wait_for_async, wait_until


def test_wait_for_returns_the_first_answer_that_is_not_none_or_false() -> None:
    answers = iter([None, False, 0, 7])
    assert wait_for("an answer", lambda: next(answers), every_s=0.001) == 0


def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    counter = itertools.count()
    with pytest.raises(AssertionError) as failure:
        wait_until(
            "the count to pass 10**9",
            lambda: next(counter),
            lambda n: n > 10**9,
            timeout_s=0.05,
            every_s=0.001,
        )
    message = str(failure.value)
    assert "waiting for the count to pass 10**9" in message
    last_seen = int(message.rsplit("last seen: ", 1)[1])
    assert last_seen == next(counter) - 1


def test_ignored_errors_count_as_not_yet_and_are_shown_at_the_deadline() -> None:
    def refused() -> int:
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(AssertionError, match="ConnectionRefusedError"):
        wait_for("a server", refused, timeout_s=0.02, every_s=0.001, ignoring=(OSError,))
    with pytest.raises(ConnectionRefusedError):  # not ignored: fails at once
        wait_for("a server", refused, timeout_s=10)


def test_holds_for_fails_at_the_first_value_that_breaks_it() -> None:
    values = iter([0, 0, 1, 0])
    with pytest.raises(AssertionError, match="no attempt spent stopped holding; seen: 1"):
        holds_for(
            "no attempt spent", lambda: next(values), lambda n: n == 0, duration_s=10, every_s=0.001
        )
    assert holds_for("zero", lambda: 0, lambda n: n == 0, duration_s=0.01, every_s=0.001) == 0


async def test_wait_for_async_takes_coroutine_probes_and_wakes_on_a_change() -> None:
    changed = asyncio.Event()
    box: list[str] = []

    async def filled() -> str | None:
        return box[0] if box else None

    def fill() -> None:
        box.append("message")
        changed.set()

    asyncio.get_running_loop().call_later(0.01, fill)
    # every_s is far beyond the deadline: only the event can wake the wait in time.
    assert await wait_for_async("a message", filled, changed=changed, every_s=60) == "message"
    with pytest.raises(AssertionError, match="waiting for nothing; last seen: None"):
        await wait_for_async("nothing", lambda: None, timeout_s=0.02, every_s=0.001)
