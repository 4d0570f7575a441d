"""Start a real Mosquitto with a generated configuration (local stack, tests, benchmarks)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from switchyard.procs import ManagedProcess, ProcessStartError, free_port


def mosquitto_binary() -> str:
    """Path of the mosquitto executable, or a clear error saying how to get it."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ProcessStartError("mosquitto not found: install it with `apt-get install -y mosquitto`")


@dataclass(frozen=True)
class BrokerConfig:
    """What the generated mosquitto.conf says."""

    host: str = "127.0.0.1"
    port: int = 0
    persistence: bool = True
    max_inflight_messages: int = 1000
    max_queued_messages: int = 100_000
    extra_lines: tuple[str, ...] = ()


def write_config(workdir: Path, config: BrokerConfig, port: int) -> Path:
    """Write mosquitto.conf for this broker into workdir and return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"listener {port} {config.host}",
        "allow_anonymous true",
        f"persistence {'true' if config.persistence else 'false'}",
        f"persistence_location {workdir}/",
        "autosave_interval 1",
        f"max_inflight_messages {config.max_inflight_messages}",
        f"max_queued_messages {config.max_queued_messages}",
        "set_tcp_nodelay true",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        *config.extra_lines,
    ]
    path = workdir / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Broker:
    """A running Mosquitto and where to reach it."""

    host: str
    port: int
    workdir: Path
    process: ManagedProcess

    def restart(self) -> None:
        """Start the broker again on the same port with the same config and persistence."""
        self.process.start()
        self.process.wait_port(self.host, self.port)


def start_broker(workdir: Path, config: BrokerConfig | None = None) -> Broker:
    """Start Mosquitto with a generated config in workdir and wait until it accepts clients."""
    config = config or BrokerConfig()
    port = config.port or free_port(config.host)
    conf_path = write_config(workdir, config, port)
    process = ManagedProcess(
        "mosquitto", [mosquitto_binary(), "-c", str(conf_path)], workdir / "mosquitto.log"
    ).start()
    process.wait_port(config.host, port)
    return Broker(config.host, port, workdir, process)
