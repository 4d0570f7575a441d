"""Run the meter simulator: build the fleet from settings and serve its link until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError

from firmware_sim.clock import ScaledClock
from firmware_sim.errors import SimError
from firmware_sim.faults import LinkFaults
from firmware_sim.fleet import Fleet, FleetSpec, generate_fleet, load_fleet_file
from firmware_sim.link_server import LinkServer
from firmware_sim.settings import SimSettings
from firmware_sim.store import CHECKPOINT_EVERY_S, STORE_FILE, MeterStore
from wire.clock import now_ms as wall_now_ms

log = logging.getLogger(__name__)


def fleet_spec(settings: SimSettings) -> FleetSpec:
    """The fleet file's fleet, or a generated demo fleet when there is no file."""
    if settings.fleet_file is not None:
        return load_fleet_file(settings.fleet_file)
    return generate_fleet(
        settings.meters,
        settings.gateways,
        settings.seed,
        disconnected_share=settings.disconnected_share,
    )


@asynccontextmanager
async def running_link(settings: SimSettings) -> AsyncIterator[LinkServer]:
    """A listening link server for the configured fleet, closed on exit (tests use port 0)."""
    if settings.state_dir is None:
        fleet = Fleet.from_spec(
            fleet_spec(settings), ScaledClock(settings.time_scale), seed=settings.seed
        )
        async with _serving(settings, fleet) as server:
            yield server
        return
    store = MeterStore.open(settings.state_dir / STORE_FILE)
    try:
        # Meter time never runs backwards across a restart, even when it runs faster than wall.
        origin_ms = max(wall_now_ms(), store.meter_time_ms())
        clock = ScaledClock(settings.time_scale, origin_ms=origin_ms)
        fleet = _durable_fleet(settings, store, clock)
        async with _serving(settings, fleet) as server, _checkpointing(store, fleet, clock):
            yield server
    finally:
        store.close()


def _durable_fleet(settings: SimSettings, store: MeterStore, clock: ScaledClock) -> Fleet:
    """The fleet file's meters, each as the store last kept it (a new meter as the file says)."""
    fleet = Fleet.from_spec(fleet_spec(settings), clock, seed=settings.seed)
    saved = store.load()
    for meter in fleet:
        kept = saved.get(meter.meter_id)
        if kept is not None:
            meter.restore(kept.snapshot, kept.events)
        meter.journal = store
    store.checkpoint(fleet, clock.now_ms())
    log.info(
        "meter state from %s: %d of %d meters restored", settings.state_dir, len(saved), len(fleet)
    )
    return fleet


@asynccontextmanager
async def _checkpointing(
    store: MeterStore, fleet: Fleet, clock: ScaledClock
) -> AsyncIterator[None]:
    """Save every meter's registers now and then, and once more on a clean stop."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            store.checkpoint(fleet, clock.now_ms())

    task = asyncio.create_task(loop(), name="sim-checkpoint")
    try:
        yield
    finally:
        task.cancel()
        store.checkpoint(fleet, clock.now_ms())


@asynccontextmanager
async def _serving(settings: SimSettings, fleet: Fleet) -> AsyncIterator[LinkServer]:
    faults = LinkFaults(
        latency_ms=settings.latency_ms,
        loss=settings.loss,
        unreachable=frozenset(settings.unreachable),
    )
    server = LinkServer(fleet, faults, seed=settings.seed)
    await server.start(settings.link_host, settings.link_port)
    try:
        yield server
    finally:
        await server.close()


async def serve(settings: SimSettings, *, ready: asyncio.Event | None = None) -> None:
    """Serve the meter link until cancelled; `ready` is set once it accepts connections."""
    async with running_link(settings) as server:
        host, port = server.address
        log.info(
            "link listening on %s:%d (%d meters on %d DCUs, time_scale %g, %s)",
            host,
            port,
            len(server.fleet),
            len(server.fleet.dcu_ids),
            settings.time_scale,
            server.faults.describe(),
        )
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()


async def _serve_until_signalled(settings: SimSettings) -> None:
    """Serve until SIGTERM or SIGINT, then close every connection and return."""
    loop = asyncio.get_running_loop()
    serving = asyncio.create_task(serve(settings), name="sim-link")
    stop_requested = asyncio.Event()

    def stop() -> None:
        stop_requested.set()
        serving.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    try:
        await serving
    except asyncio.CancelledError:
        if not stop_requested.is_set():
            raise
    log.info("simulator stopped")


def main() -> None:
    """Entry point of `switchyard sim` and `python -m firmware_sim`."""
    try:
        settings = SimSettings()
    except ValidationError as exc:
        raise SystemExit(f"switchyard sim: invalid settings\n{exc}") from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        _event_loop_runner()(_serve_until_signalled(settings))
    except SimError as exc:
        raise SystemExit(f"switchyard sim: {exc}") from exc
    except OSError as exc:
        where = f"{settings.link_host}:{settings.link_port}"
        raise SystemExit(f"switchyard sim: cannot listen on {where}: {exc}") from exc


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (it roughly halves the loop's own overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
