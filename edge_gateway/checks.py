"""Verification of one command before anything may touch a relay."""

from __future__ import annotations

from collections.abc import Set

from edge_gateway.errors import CommandRefused
from wire import AckStatus, BadSignature, Command, KeyRing, UnknownKey
from wire.topics import ParsedTopic

NOT_ON_DCU = "meter not on this DCU"


def verify_command(
    command: Command,
    topic: ParsedTopic,
    *,
    dcu_id: str,
    roster: Set[str],
    keyring: KeyRing,
    now_ms: int,
    last_version: int,
) -> None:
    """Raise CommandRefused unless this gateway may execute the command now."""
    meter_id = topic.meter_id or command.meter_id

    def refuse(status: AckStatus, reason: str, *, durable: bool = True) -> CommandRefused:
        return CommandRefused(command.command_id, meter_id, status, reason, durable=durable)

    # The signature first: until it verifies, nothing in the payload is the cloud's word, and a
    # refusal says nothing about the genuine command with the same id.
    try:
        keyring.verify(command)
    except UnknownKey as exc:
        raise refuse(
            AckStatus.REJECTED, f"unknown signing key {command.key_id!r}", durable=False
        ) from exc
    except BadSignature as exc:
        raise refuse(AckStatus.REJECTED, f"bad signature: {exc.reason}", durable=False) from exc
    # A genuine command on the wrong topic was misdelivered; on its own topic it may be valid.
    if topic.dcu_id != dcu_id or command.dcu_id != dcu_id:
        raise refuse(
            AckStatus.REJECTED, f"command for DCU {command.dcu_id}, this is {dcu_id}", durable=False
        )
    if command.meter_id != topic.meter_id:
        raise refuse(AckStatus.REJECTED, "command meter does not match its topic", durable=False)
    if command.meter_id not in roster:
        raise refuse(AckStatus.REJECTED, NOT_ON_DCU)
    if command.expires_at_ms < now_ms:
        late_s = (now_ms - command.expires_at_ms) / 1000
        raise refuse(AckStatus.EXPIRED, f"expired {late_s:.1f}s ago")
    if command.version <= last_version:
        raise refuse(
            AckStatus.REJECTED,
            f"stale version {command.version} (last applied {last_version})",
        )
