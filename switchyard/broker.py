"""Start a real Mosquitto with a generated configuration (local stack, tests, benchmarks); with
`BrokerSecurity`, the project's secured broker: TLS, client certificates, passwords and the ACL."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from dataclasses import dataclass, replace
from pathlib import Path

from switchyard.broker_credentials import BrokerCredentials, write_acl, write_dynsec
from switchyard.procs import Launch, ManagedProcess, ProcessStartError, free_port, port_open
from wire.limits import MAX_PACKET_BYTES


def mosquitto_binary() -> str:
    """Path of the mosquitto executable, or a clear error saying how to get it."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ProcessStartError("mosquitto not found: install it with `apt-get install -y mosquitto`")


@dataclass(frozen=True)
class BrokerSecurity:
    """Where the secured listener finds its certificates, password file and ACL."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    password_file: Path
    acl_file: Path
    dynsec_file: Path
    dynsec_plugin: Path

    @classmethod
    def from_credentials(
        cls, creds: BrokerCredentials, acl_file: Path, dynsec_file: Path
    ) -> BrokerSecurity:
        """The files of a credentials directory, with the ACL and plugin configuration given."""
        return cls(
            creds.ca_cert,
            creds.server_cert,
            creds.server_key,
            creds.password_file,
            acl_file,
            dynsec_file,
            dynsec_plugin_path(),
        )


def dynsec_plugin_path() -> Path:
    """The dynamic-security plugin that ships with Mosquitto 2."""
    for candidate in _DYNSEC_PLUGINS:
        if candidate.exists():
            return candidate
    raise ProcessStartError("mosquitto_dynamic_security.so not found: install Mosquitto 2")


_DYNSEC_PLUGINS = (
    Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/mosquitto_dynamic_security.so"),
)


def security_lines(security: BrokerSecurity) -> list[str]:
    """The directives that secure the listener they follow (also in mosquitto/mosquitto.conf)."""
    return [
        "allow_anonymous false",
        f"password_file {security.password_file}",
        f"acl_file {security.acl_file}",
        f"cafile {security.ca_file}",
        f"certfile {security.cert_file}",
        f"keyfile {security.key_file}",
        # Both a certificate from our CA and a password: either alone gets nobody in.
        "require_certificate true",
        "use_identity_as_username false",
        "tls_version tlsv1.2",
        # Consulted before password_file and acl_file: refuses subscriptions beyond a gateway's
        # own commands (acl_file checks none) and ties each gateway to its client id.
        f"plugin {security.dynsec_plugin}",
        f"plugin_opt_config_file {security.dynsec_file}",
        # Larger publishes are refused (the client is disconnected) and never stored.
        f"max_packet_size {MAX_PACKET_BYTES}",
    ]


@dataclass(frozen=True)
class BrokerConfig:
    """What the generated mosquitto.conf says."""

    host: str = "127.0.0.1"
    port: int = 0
    persistence: bool = True
    max_inflight_messages: int = 1000
    max_queued_messages: int = 100_000
    extra_lines: tuple[str, ...] = ()
    # None: a plain listener that lets anyone in (tests that are not about security).
    security: BrokerSecurity | None = None


def write_config(workdir: Path, config: BrokerConfig, port: int) -> Path:
    """Write mosquitto.conf for this broker into workdir and return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        # Started as root, Mosquitto would switch to the `mosquitto` user and then be unable to
        # read our 0600 keys and password file: it stays whoever started it.
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        f"listener {port} {config.host}",
        *(security_lines(config.security) if config.security else ["allow_anonymous true"]),
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
    security: BrokerSecurity | None = None

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password file and ACL (credential rotation)."""
        self.process.signal(signal.SIGHUP)

    def restart(self) -> None:
        """Start the broker again on the same port with the same config and persistence."""
        self.process.start()
        self.process.wait_port(self.host, self.port)


def start_broker(
    workdir: Path, config: BrokerConfig | None = None, launch: Launch | None = None
) -> Broker:
    """Start Mosquitto with a generated config in workdir and wait until it accepts clients.

    With `launch` (a stack's launcher thread), the broker dies with the process that started it.
    """
    config = config or BrokerConfig()
    port = config.port or free_port(config.host)
    if port_open(config.host, port):
        # Mosquitto would fail to bind and exit; clients would talk to whoever holds the port.
        raise ProcessStartError(f"broker port {config.host}:{port} is already in use")
    conf_path = write_config(workdir, config, port)
    process = ManagedProcess(
        "mosquitto",
        [mosquitto_binary(), "-c", str(conf_path)],
        workdir / "mosquitto.log",
        die_with_parent=launch is not None,
        launch=launch,
    ).start()
    try:
        process.wait_port(config.host, port)
    except ProcessStartError:
        process.kill()
        raise
    return Broker(config.host, port, workdir, process, config.security)


def start_secure_broker(
    workdir: Path,
    creds: BrokerCredentials,
    config: BrokerConfig | None = None,
    launch: Launch | None = None,
) -> Broker:
    """Start Mosquitto with the project's security: TLS listener, passwords and the ACL."""
    security = BrokerSecurity.from_credentials(
        creds,
        write_acl(workdir / "acl"),
        write_dynsec(workdir / "dynamic-security.json", sorted(creds.passwords)),
    )
    return start_broker(workdir, replace(config or BrokerConfig(), security=security), launch)
