"""Inbox records: every command the gateway has seen, and its outcome once it has one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from wire import Ack, AckStatus, Action, RelayState

# The only failure reason worth retrying: the meter did not answer, so it may answer later.
UNREACHABLE = "meter unreachable"


class InboxStatus(StrEnum):
    """Where a command stands in the inbox; `accepted` means verified but not yet finished."""

    ACCEPTED = "accepted"
    EXECUTED = "executed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def ack_status(self) -> AckStatus:
        """The ack status that reports this inbox status."""
        return AckStatus.RECEIVED if self is InboxStatus.ACCEPTED else AckStatus(self.value)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One command the gateway has seen, with its outcome once it has one."""

    command_id: str
    meter_id: str
    version: int
    action: Action | None
    status: InboxStatus
    expires_at_ms: int
    received_at_ms: int
    relay: RelayState | None = None
    event_code: int | None = None
    reason: str = ""
    done_at_ms: int | None = None
    # The relay's read-back in the meter's history: its event sequence, and when the read began.
    event_seq: int | None = None
    read_ms: int | None = None

    def finished(
        self,
        status: InboxStatus,
        *,
        at_ms: int,
        relay: RelayState | None = None,
        event_seq: int | None = None,
        read_ms: int | None = None,
        event_code: int | None = None,
        reason: str = "",
    ) -> InboxEntry:
        """This entry with its outcome."""
        return replace(
            self,
            status=status,
            relay=relay,
            event_seq=event_seq,
            read_ms=read_ms,
            event_code=event_code,
            reason=reason,
            done_at_ms=at_ms,
        )

    def reopened(self) -> InboxEntry:
        """This entry back to `accepted`, for another attempt after `failed`."""
        return replace(self, status=InboxStatus.ACCEPTED, reason="", done_at_ms=None)

    def ack(self, dcu_id: str, *, now_ms: int) -> Ack:
        """The ack that reports this entry; a finished one carries the time it finished."""
        return Ack(
            command_id=self.command_id,
            meter_id=self.meter_id,
            dcu_id=dcu_id,
            status=self.status.ack_status,
            relay=self.relay,
            event_code=self.event_code,
            version=self.version,
            at_ms=self.done_at_ms if self.done_at_ms is not None else now_ms,
            reason=self.reason,
            retryable=self.retryable,
            event_seq=self.event_seq,
            read_ms=self.read_ms,
        )

    @property
    def retryable(self) -> bool:
        """Whether this is a failure that trying again may cure."""
        return self.status is InboxStatus.FAILED and self.reason == UNREACHABLE
