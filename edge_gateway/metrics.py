"""Counters of what the gateway did, logged at shutdown and read by tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields


@dataclass
class GatewayMetrics:
    """Monotonic counters; incremented only on the event loop, so no locking."""

    commands_received: int = 0
    commands_malformed: int = 0
    commands_duplicate: int = 0
    commands_resumed: int = 0
    relay_operations: int = 0
    link_timeouts: int = 0
    link_malformed_frames: int = 0
    events_published: int = 0
    telemetry_batches: int = 0
    telemetry_entries: int = 0  # readings and profile blocks collected
    telemetry_live: int = 0  # batches PUBACKed as published live
    telemetry_replayed: int = 0  # batches PUBACKed after a replay from the backlog (historical)
    # Totals over the store's life (loaded at start): what the bounded backlog had to drop.
    telemetry_dropped_batches: int = 0
    telemetry_dropped_entries: int = 0
    outbound_published: int = 0
    outbound_refused: int = 0
    # PUBACKs saying no subscription matched (acks, events or telemetry): each is sent again.
    outbound_undelivered: int = 0
    job_errors: int = 0
    # Final outcomes by inbox status: executed, failed, rejected, expired.
    outcomes: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        """A copy of every counter by name, outcomes as a plain dict."""
        counters: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        counters["outcomes"] = {str(status): count for status, count in self.outcomes.items()}
        return counters
