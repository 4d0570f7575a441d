"""The meter link's injected faults: latency with jitter, request loss, unreachable meters."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from wire.meterlink import LinkRequest

# Each answer waits latency_ms plus up to this share of it again, so answers overtake each other.
JITTER_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """What the link does to requests that reach meters; immutable, swapped whole at run time."""

    latency_ms: float = 0.0
    loss: float = 0.0
    unreachable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be within 0..1, got {self.loss}")

    def changed_by(self, request: LinkRequest) -> LinkFaults:
        """These faults with what a `fault` request sets; fields it leaves out stay as they are."""
        return replace(
            self,
            latency_ms=self.latency_ms if request.latency_ms is None else request.latency_ms,
            loss=self.loss if request.loss is None else request.loss,
            unreachable=(
                self.unreachable if request.unreachable is None else frozenset(request.unreachable)
            ),
        )

    def describe(self) -> str:
        """One line for logs and for the `fault` op's answer."""
        return (
            f"latency_ms={self.latency_ms:g} loss={self.loss:g} "
            f"unreachable={len(self.unreachable)} meter(s)"
        )


class FaultDice:
    """The random side of the faults: one seeded generator, so a run can be repeated."""

    __slots__ = ("_rng",)

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def lost(self, faults: LinkFaults) -> bool:
        """Whether this request is dropped on the way."""
        return faults.loss > 0.0 and self._rng.random() < faults.loss

    def delay_s(self, faults: LinkFaults) -> float:
        """How long this request's answer takes."""
        if faults.latency_ms == 0.0:
            return 0.0
        return faults.latency_ms * (1.0 + JITTER_SHARE * self._rng.random()) / 1000.0
