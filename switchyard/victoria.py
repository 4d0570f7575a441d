"""Start a real VictoriaMetrics (tests, benchmarks): it takes InfluxDB's v2 write API."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from switchyard.procs import ManagedProcess, ProcessStartError, free_port

_YEAR_S = 365 * 86_400


def victoria_binary() -> str:
    """Path of the victoria-metrics executable, or a clear error saying how to get it."""
    for candidate in (shutil.which("victoria-metrics"), "/usr/bin/victoria-metrics"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ProcessStartError(
        "victoria-metrics not found: install it with `apt-get install -y victoria-metrics`"
    )


@dataclass
class Victoria:
    """A running VictoriaMetrics with its own data directory."""

    host: str
    port: int
    workdir: Path
    process: ManagedProcess

    @property
    def url(self) -> str:
        """Base URL; the InfluxDB v2 write API is at /api/v2/write."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start (again) on the same port and data directory; wait until it answers."""
        self.process.start()
        self.process.wait_port(self.host, self.port)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): VictoriaMetrics flushes what it has taken."""
        self.process.stop(timeout_s=20.0)

    def flush(self) -> None:
        """Make every sample taken so far visible to queries."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=10.0).raise_for_status()

    def export(self, match: str) -> list[dict[str, Any]]:
        """Raw samples of every series matching `match`, duplicates included (no dedup is set)."""
        self.flush()
        response = httpx.post(
            f"{self.url}/api/v1/export",
            # Accelerated meter time runs ahead of the wall clock: look far into the future too.
            data={"match[]": match, "start": "0", "end": str(int(time.time()) + _YEAR_S * 10)},
            timeout=60.0,
        )
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def samples(self, metric: str) -> list[tuple[dict[str, str], int, float]]:
        """Every raw sample of one metric: (labels without __name__, timestamp ms, value)."""
        found = []
        for series in self.export(f'{{__name__="{metric}"}}'):
            labels = {k: str(v) for k, v in series["metric"].items() if k != "__name__"}
            pairs = zip(series["timestamps"], series["values"], strict=True)
            found += [(labels, int(t), float(v)) for t, v in pairs]
        return found


def start_victoria(workdir: Path, *, host: str = "127.0.0.1", port: int = 0) -> Victoria:
    """Start VictoriaMetrics on a free port with its data in workdir, keeping every sample."""
    port = port or free_port(host)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        victoria_binary(),
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr={host}:{port}",
        "-retentionPeriod=100y",
        "-search.latencyOffset=0s",
        "-loggerLevel=WARN",
    ]
    process = ManagedProcess("victoria-metrics", argv, workdir / "victoria.log")
    victoria = Victoria(host, port, workdir, process)
    victoria.start()
    return victoria
