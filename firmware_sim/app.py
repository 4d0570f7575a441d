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
    clock = ScaledClock(settings.time_scale)
    fleet = Fleet.from_spec(fleet_spec(settings), clock, seed=settings.seed)
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
