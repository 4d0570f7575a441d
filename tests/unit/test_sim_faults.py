"""Link faults: partial run-time changes, validation, and the dice that apply them."""

from __future__ import annotations

import pytest

from firmware_sim.faults import JITTER_SHARE, FaultDice, LinkFaults
from wire.meterlink import LinkOp, LinkRequest


def test_fault_request_changes_only_what_it_names() -> None:
    faults = LinkFaults(latency_ms=50, loss=0.1, unreachable=frozenset({"MTR1"}))
    only_loss = faults.changed_by(LinkRequest(id=1, op=LinkOp.FAULT, loss=0.5))
    assert only_loss == LinkFaults(latency_ms=50, loss=0.5, unreachable=frozenset({"MTR1"}))
    cleared = only_loss.changed_by(LinkRequest(id=2, op=LinkOp.FAULT, unreachable=[]))
    assert cleared.unreachable == frozenset()
    assert cleared.latency_ms == 50


@pytest.mark.parametrize(("latency_ms", "loss"), [(-1.0, 0.0), (0.0, -0.1), (0.0, 1.1)])
def test_impossible_faults_are_refused(latency_ms: float, loss: float) -> None:
    with pytest.raises(ValueError):
        LinkFaults(latency_ms=latency_ms, loss=loss)


def test_dice_follow_the_faults() -> None:
    dice = FaultDice(seed=1)
    assert not any(dice.lost(LinkFaults(loss=0.0)) for _ in range(1000))
    assert all(dice.lost(LinkFaults(loss=1.0)) for _ in range(1000))
    lost = sum(dice.lost(LinkFaults(loss=0.3)) for _ in range(10_000))
    assert 2700 < lost < 3300

    assert dice.delay_s(LinkFaults()) == 0.0
    delays_s = [dice.delay_s(LinkFaults(latency_ms=200)) for _ in range(1000)]
    assert min(delays_s) >= 0.2
    assert max(delays_s) <= 0.2 * (1 + JITTER_SHARE)
    assert len(set(delays_s)) > 900  # jittered, so answers can overtake each other
