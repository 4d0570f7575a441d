"""Invocation counters: the receiver's replay guard and the sender's never-reused source."""

from typing import Protocol

from dlms.errors import InvocationCounterExhausted, ReplayedInvocationCounter
from dlms.security.context import MAX_INVOCATION_COUNTER, check_invocation_counter


class InvocationCounterGuard:
    """Refuses a peer's counter not greater than the last one accepted from it (replay).

    Check before deciphering and accept only after the tag verified: recording an
    unauthenticated counter would let a forger push the window past the real sender's.
    One guard per (peer system title, key); not thread-safe, owned by one session.
    """

    def __init__(self, last_accepted: int | None = None) -> None:
        if last_accepted is not None:
            check_invocation_counter(last_accepted)
        self._last_accepted = last_accepted

    @property
    def last_accepted(self) -> int | None:
        """The highest counter accepted so far (None before the first)."""
        return self._last_accepted

    def check(self, invocation_counter: int) -> None:
        """ReplayedInvocationCounter if `invocation_counter` is not fresh; records nothing."""
        if self._last_accepted is not None and invocation_counter <= self._last_accepted:
            raise ReplayedInvocationCounter(invocation_counter, self._last_accepted)

    def accept(self, invocation_counter: int) -> None:
        """Check, then record `invocation_counter` as the last accepted."""
        self.check(invocation_counter)
        self._last_accepted = invocation_counter


class ReserveCounters(Protocol):
    """Durably records that counters up to `ceiling` may have been used.

    The gateway implements this with its store; it must return only once the ceiling is on
    disk, and raise if it could not be written (then no counter above the old ceiling is
    handed out). It is called once per block, so a slow store costs one write per block.
    """

    def __call__(self, ceiling: int) -> None: ...


class InvocationCounterSource:
    """Our strictly increasing invocation counters for one key, reserved in blocks.

    Start it from the ceiling persisted by the previous run (0 for a new key): every counter
    up to that ceiling may already have been sent, so the first one issued is ceiling + 1.
    A crash wastes at most one block of counters and never reuses one. Not thread-safe.
    """

    def __init__(
        self, reserved_ceiling: int, reserve: ReserveCounters, block_size: int = 1000
    ) -> None:
        check_invocation_counter(reserved_ceiling)
        if block_size < 1:
            raise ValueError(f"block size {block_size} must be at least 1")
        self._reserve = reserve
        self._block_size = block_size
        self._ceiling = reserved_ceiling
        self._next = reserved_ceiling + 1

    @property
    def next_counter(self) -> int:
        """The counter the next call to `issue` returns (if not exhausted)."""
        return self._next

    def issue(self) -> int:
        """A counter never issued before for this key; reserves a new block when needed."""
        if self._next > MAX_INVOCATION_COUNTER:
            raise InvocationCounterExhausted(MAX_INVOCATION_COUNTER)
        if self._next > self._ceiling:
            ceiling = min(self._next + self._block_size - 1, MAX_INVOCATION_COUNTER)
            self._reserve(ceiling)  # durable before the first counter of the block is used
            self._ceiling = ceiling
        issued = self._next
        self._next += 1
        return issued

    def skip_past(self, counter_seen_by_peer: int) -> None:
        """Make the next counter greater than one the peer already holds.

        For a meter whose replay guard has moved past ours (e.g. read from its frame
        counter object after a refusal); never moves backwards.
        """
        check_invocation_counter(counter_seen_by_peer)
        self._next = max(self._next, counter_seen_by_peer + 1)
