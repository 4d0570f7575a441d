"""The edge gateway's exception tree, each error carrying the ids and reason it concerns."""

from __future__ import annotations

from wire import AckStatus


class GatewayError(Exception):
    """Base of every error the edge gateway raises on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(GatewayError):
    """The durable SQLite store could not complete an operation."""


class MqttError(GatewayError):
    """The MQTT client could not do what was asked; `rc` is paho's code when there is one."""

    def __init__(self, reason: str, *, rc: int | None = None) -> None:
        super().__init__(reason if rc is None else f"{reason} (rc={rc})")
        self.rc = rc


class PublishError(MqttError):
    """A publish was refused, locally by the client or by the broker in its PUBACK."""

    def __init__(self, topic: str, reason: str, *, rc: int | None = None) -> None:
        super().__init__(f"publish to {topic!r} failed: {reason}", rc=rc)
        self.topic = topic


class NotDelivered(PublishError):
    """The broker acknowledged a message that no subscription matched: nobody has it."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic, "no matching subscribers")


class MeterLinkError(GatewayError):
    """A meter-link request did not give a usable answer."""

    def __init__(self, meter_id: str | None, reason: str) -> None:
        super().__init__(f"meter {meter_id or '*'}: {reason}")
        self.meter_id = meter_id
        self.reason = reason


class MeterUnreachable(MeterLinkError):
    """No answer within the deadline, or the link was down: an operation may or may not have run."""


class MeterLinkRefused(MeterLinkError):
    """The link server answered with an error code (unknown meter, not bound, bad request)."""

    def __init__(self, meter_id: str | None, code: str, message: str = "") -> None:
        super().__init__(meter_id, f"{code}: {message}" if message else code)
        self.code = code


class CommandRefused(GatewayError):
    """A command that failed verification; it is acknowledged with `status` and never executed.

    `durable` refusals judge the genuine, correctly addressed command and are stored to answer
    its duplicates; the others (unverified signature, wrong topic) judge only the copy that
    arrived, so storing them under its command id would let a forgery block the real command.
    """

    def __init__(
        self,
        command_id: str,
        meter_id: str,
        status: AckStatus,
        reason: str,
        *,
        durable: bool = True,
    ) -> None:
        super().__init__(reason)
        self.command_id = command_id
        self.meter_id = meter_id
        self.status = status
        self.durable = durable
