"""Real processes for telemetry tests: the cloud, gateways, and a log of simulated readings."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from firmware_sim.fleet import Fleet
from firmware_sim.meter import SimMeter
from switchyard.procs import ManagedProcess, free_port
from tests.support.wait import wait_for_async
from wire import Reading

REPO_ROOT = Path(__file__).resolve().parents[2]
VIEWER_TOKEN = "viewer-token-for-tests"
OPERATOR_TOKEN = "operator-token-for-tests"
T = TypeVar("T")


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without SWITCHYARD_*, plus `settings` as SWITCHYARD_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env |= {f"SWITCHYARD_{name.upper()}": value for name, value in settings.items()}
    return env


@dataclass
class CloudProcess:
    """`python -m cloud.main`, restartable with the same database, session and spool."""

    workdir: Path
    settings: dict[str, str]
    port: int = field(default_factory=free_port)
    starts: int = 0
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ManagedProcess:
        """Start it and wait until the API answers."""
        self.starts += 1
        env = clean_env(
            dev_mode="true",
            http_port=str(self.port),
            viewer_token=VIEWER_TOKEN,
            operator_token=OPERATOR_TOKEN,
            webhook_secret="webhook-secret-for-tests",
            telemetry_spool_dir=str(self.workdir / "spool"),
            **self.settings,
        )
        log_path = self.workdir / f"cloud-{self.starts}.log"
        argv = [sys.executable, "-m", "cloud.main"]
        self.process = ManagedProcess("cloud", argv, log_path, env=env, cwd=REPO_ROOT).start()
        self.process.wait_port("127.0.0.1", self.port, timeout_s=30.0)
        return self.process

    def stop(self) -> int | None:
        """SIGTERM, wait for a clean exit; answer the exit code."""
        assert self.process is not None
        return self.process.stop(timeout_s=30.0)

    def log_text(self) -> str:
        """Everything the current run has logged."""
        assert self.process is not None
        return self.process.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Its Prometheus samples, `name{label="v",...}` -> value."""
        text = httpx.get(f"{self.url}/metrics", timeout=5.0).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def get(self, path: str, **params: str) -> httpx.Response:
        """GET with the viewer's token."""
        headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=10.0)


@dataclass
class GatewayProcess:
    """`python -m edge_gateway` for one DCU, with its own state directory."""

    dcu_id: str
    workdir: Path
    settings: dict[str, str]
    starts: int = 0
    process: ManagedProcess | None = None

    def start(self) -> ManagedProcess:
        """Start one more run of this gateway."""
        self.starts += 1
        env = clean_env(
            # A plain test broker: no TLS or passwords, which only development mode allows.
            dev_mode="true",
            dcu_id=self.dcu_id,
            state_dir=str(self.workdir / "state"),
            link_timeout_s="2.0",
            event_poll_s="0",
            **self.settings,
        )
        log_path = self.workdir / f"gateway-{self.dcu_id}-{self.starts}.log"
        argv = [sys.executable, "-m", "edge_gateway"]
        self.process = ManagedProcess(
            f"gateway {self.dcu_id}", argv, log_path, env=env, cwd=REPO_ROOT
        ).start()
        return self.process

    def stop(self) -> int | None:
        """SIGTERM, wait for a clean exit."""
        assert self.process is not None
        return self.process.stop(timeout_s=30.0)


class ReadingLog:
    """Every reading the simulated meters produced, recorded as the link asks for it."""

    def __init__(self, fleet: Fleet) -> None:
        self.readings: list[Reading] = []
        for dcu_id in fleet.dcu_ids:
            for meter in fleet.on_dcu(dcu_id).values():
                self._spy(meter)

    def _spy(self, meter: SimMeter) -> None:
        produce = meter.reading

        def reading() -> Reading:
            produced = produce()
            self.readings.append(produced)
            return produced

        meter.reading = reading  # type: ignore[method-assign]

    def reading_keys(self) -> set[tuple[str, int]]:
        """(meter id, reading time in ms) of every reading produced."""
        return {(r.meter_id, r.at_ms) for r in self.readings}


async def eventually(
    what: str, probe: Callable[[], T | None], *, timeout_s: float = 60.0, every_s: float = 0.2
) -> T:
    """Wait for a blocking probe (HTTP, a query) run in a thread, an unreachable server counting
    as "not yet"; fail with `what` and the last answer or error at the deadline."""
    return await wait_for_async(
        what,
        lambda: asyncio.to_thread(probe),
        timeout_s=timeout_s,
        every_s=every_s,
        ignoring=(httpx.HTTPError, OSError),
    )
