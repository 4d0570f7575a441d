"""The seams between the gateway's domain logic and MQTT, so the logic is testable without paho."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from the broker; call `puback()` once it has been durably handled."""

    topic: str
    payload: bytes
    qos: int = 1
    dup: bool = False
    on_puback: Callable[[], None] = field(default=lambda: None, repr=False)

    def puback(self) -> None:
        """Acknowledge delivery to the broker; until then it redelivers after a reconnect."""
        self.on_puback()


MessageHandler = Callable[[InboundMessage], None]


class Publisher(Protocol):
    """Publishes a message; the future resolves when the broker has it (PUBACK for QoS 1)."""

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue one message for the broker; raise PublishError if it cannot even be queued."""
        ...


class ConnectedPublisher(Publisher, Protocol):
    """A publisher that also tells whether the broker connection is up right now."""

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        ...


class OutboundQueue(Protocol):
    """Where committed outbound rows are announced so they get published."""

    def notify(self) -> None:
        """Tell the publisher that new rows were committed."""
        ...
