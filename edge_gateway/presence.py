"""This DCU's retained presence: the birth with its meter roster, and the offline state."""

from __future__ import annotations

import asyncio

from edge_gateway.errors import MeterLinkError
from edge_gateway.meterlink import MeterLink
from edge_gateway.store import Store
from wire import GatewayState, MeterReport
from wire.clock import now_ms

_CONCURRENT_READS = 64


async def birth_state(dcu_id: str, boot_seq: int, link: MeterLink, store: Store) -> GatewayState:
    """Online state with every roster meter's relay, as read now, and last applied version."""
    versions = await store.last_versions()
    reads = asyncio.Semaphore(_CONCURRENT_READS)

    async def report(meter_id: str) -> MeterReport:
        last_version = versions.get(meter_id, 0)
        async with reads:
            # Stamped before the read: commands may switch the relay while the roster is read,
            # and the cloud must see this report as older than their acks (docs/design.md).
            read_ms = now_ms()
            try:
                status = await link.read(meter_id)
            except MeterLinkError:
                return MeterReport(meter_id=meter_id, reachable=False, last_version=last_version)
        return MeterReport(
            meter_id=meter_id,
            reachable=True,
            relay=status.relay,
            control_mode=status.control_mode,
            last_version=last_version,
            event_seq=status.last_event_seq,
            read_ms=read_ms,
        )

    meters = await asyncio.gather(*(report(meter_id) for meter_id in sorted(link.roster)))
    return GatewayState(
        dcu_id=dcu_id, online=True, boot_seq=boot_seq, at_ms=now_ms(), meters=list(meters)
    )


def offline_state(dcu_id: str, boot_seq: int) -> GatewayState:
    """Offline state: published on a clean stop, and registered as the MQTT Will."""
    return GatewayState(dcu_id=dcu_id, online=False, boot_seq=boot_seq, at_ms=now_ms())
