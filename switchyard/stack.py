"""The local stack: Mosquitto, simulated meters, one gateway per DCU and the cloud, each a
supervised child process that dies with the stack."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from cloud.db.migrate import upgrade_to_head
from cloud.db.session import Database
from cloud.onboarding import register_accounts
from switchyard.broker import Broker, BrokerConfig, start_secure_broker
from switchyard.broker_credentials import CLOUD_USER, BrokerCredentials, ensure_credentials
from switchyard.demo import DemoFleet, build_demo_fleet, register_policy_cases
from switchyard.lifeline import Launcher
from switchyard.procs import ManagedProcess, ProcessStartError, free_port, stop_all
from switchyard.state_lock import StateDirLock
from switchyard.supervisor import Part, RestartPolicy, Supervisor
from wire.signing import generate_private_key_b64, private_key_from_b64, public_key_b64

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class StackOptions:
    """What `switchyard run` was asked for."""

    meters: int = 200
    gateways: int = 4
    port: int = 8000
    mqtt_port: int = 0
    link_port: int = 0
    state_dir: Path = Path(".switchyard/run")
    host: str = "127.0.0.1"
    link_latency_ms: float = 0.0
    # None: a SQLite file in the state directory.
    database_url: str | None = None
    # How often each gateway reads its meters; meter time runs `time_scale` times as fast.
    telemetry_interval_s: float = 60.0
    time_scale: float = 1.0
    # None: readings kept in the cloud database; else InfluxDB (token from the environment).
    influx_url: str | None = None
    # Several cloud processes share the database and the broker (PostgreSQL for more than one).
    clouds: int = 1
    # Extra SWITCHYARD_* settings for each kind of process (tests tune timeouts with these).
    cloud_env: Mapping[str, str] = field(default_factory=dict)
    gateway_env: Mapping[str, str] = field(default_factory=dict)
    sim_env: Mapping[str, str] = field(default_factory=dict)
    # Where clouds and gateways reach the broker, when not directly (e.g. through a fault proxy).
    cloud_mqtt_port: int | None = None
    gateway_mqtt_port: int | None = None
    # Share of demo accounts that start disconnected for non-payment.
    disconnected_share: float = 0.1
    # Broker CA, certificates and passwords, made on first use and kept across runs.
    # None: `secrets` next to the state directory (.switchyard/secrets by default).
    secrets_dir: Path | None = None
    # Fixes the disconnection policy's clock (and dates the demo data from it); None: real time.
    policy_clock: datetime | None = None
    # A fleet built by the caller (benchmarks) instead of the demo fleet.
    fleet: DemoFleet | None = None
    # Restart parts that die (False: a test that wants to see a part stay dead).
    supervise: bool = True
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)

    @property
    def broker_credentials_dir(self) -> Path:
        """Where the broker's credentials live (outside the state directory, which is wiped)."""
        return self.secrets_dir or self.state_dir.parent / "secrets"


@dataclass
class StackSecrets:
    """Credentials of one local stack: taken from the environment or generated."""

    operator_token: str
    viewer_token: str
    webhook_secret: str
    signing_key_id: str
    signing_private_key: str

    @classmethod
    def from_env_or_generate(cls) -> StackSecrets:
        """SWITCHYARD_OPERATOR_TOKEN, _VIEWER_TOKEN and _WEBHOOK_SECRET win when set."""
        return cls(
            operator_token=os.environ.get("SWITCHYARD_OPERATOR_TOKEN") or secrets.token_urlsafe(24),
            viewer_token=os.environ.get("SWITCHYARD_VIEWER_TOKEN") or secrets.token_urlsafe(24),
            webhook_secret=os.environ.get("SWITCHYARD_WEBHOOK_SECRET") or secrets.token_urlsafe(24),
            signing_key_id=os.environ.get("SWITCHYARD_SIGNING_KEY_ID", "k1"),
            signing_private_key=os.environ.get("SWITCHYARD_SIGNING_PRIVATE_KEY")
            or generate_private_key_b64(),
        )

    @property
    def trusted_keys_json(self) -> str:
        """The gateways' trust set: this stack's signing key."""
        public = public_key_b64(private_key_from_b64(self.signing_private_key))
        return json.dumps({self.signing_key_id: public})


@dataclass
class LocalStack:
    """The processes of one running stack and how to reach them."""

    options: StackOptions
    secrets: StackSecrets
    fleet: DemoFleet
    broker: Broker | None = None
    broker_credentials: BrokerCredentials | None = None
    sim: ManagedProcess | None = None
    clouds: list[ManagedProcess] = field(default_factory=list)
    gateways: dict[str, ManagedProcess] = field(default_factory=dict)
    api_urls: list[str] = field(default_factory=list)
    link_port: int = 0
    database_url: str = ""
    # The thread that forks every child (their parent-death signal follows it), the watcher
    # that restarts them, and the lock that keeps a second stack out of the state directory.
    launcher: Launcher = field(default_factory=Launcher)
    supervisor: Supervisor | None = None
    lock: StateDirLock | None = None

    @property
    def api_url(self) -> str:
        """The first cloud process's API."""
        return self.api_urls[0] if self.api_urls else ""

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every child but the broker."""
        sim = [self.sim] if self.sim is not None else []
        return [*sim, *self.clouds, *self.gateways.values()]

    def parts(self) -> list[Part]:
        """Every child with its readiness check, for the supervisor."""
        options = self.options
        parts = [Part(p) for p in self.processes]
        if self.sim is not None:
            parts[0].ready = _listening(self.sim, options.host, self.link_port)
        for part, url in zip(parts[1:], self.api_urls, strict=False):
            part.ready = _listening(part.process, options.host, int(url.rsplit(":", 1)[1]))
        if self.broker is not None:
            broker = self.broker
            parts.append(Part(broker.process, _listening(broker.process, broker.host, broker.port)))
        return parts

    def stop(self, escalate: threading.Event | None = None) -> None:
        """Stop every child: SIGTERM, then SIGKILL after a grace period or once `escalate` is
        set; the broker last, so the others can still say goodbye through it."""
        try:
            if self.supervisor is not None:
                self.supervisor.stop()
            stop_all(self.processes, escalate=escalate)
        finally:
            try:
                if self.broker is not None:
                    stop_all([self.broker.process], escalate=escalate)
            finally:
                self.launcher.close()
                if self.lock is not None:
                    self.lock.release()

    def describe(self) -> dict[str, object]:
        """What `switchyard pay` and the user need to reach this stack."""
        return {
            "api_url": self.api_url,
            "webhook_secret": self.secrets.webhook_secret,
            "operator_token": self.secrets.operator_token,
            "viewer_token": self.secrets.viewer_token,
            "mqtt_port": self.broker.port if self.broker else None,
            "link_port": self.link_port,
            "pid": os.getpid(),
        }


def _listening(process: ManagedProcess, host: str, port: int) -> Callable[[], bool]:
    return lambda: process.listening(host, port)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _python(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _mqtt_env(creds: BrokerCredentials, user: str) -> dict[str, str]:
    """How one MQTT user reaches the secured broker: TLS, its certificate and its password."""
    return {
        "SWITCHYARD_MQTT_USERNAME": user,
        "SWITCHYARD_MQTT_PASSWORD": creds.password(user),
        "SWITCHYARD_MQTT_TLS_CA_FILE": str(creds.ca_cert),
        "SWITCHYARD_MQTT_TLS_CERT_FILE": str(creds.client_cert(user)),
        "SWITCHYARD_MQTT_TLS_KEY_FILE": str(creds.client_key(user)),
    }


async def _seed(database_url: str, fleet: DemoFleet) -> None:
    db = Database.from_url(database_url)
    try:
        await upgrade_to_head(db.engine)
        await register_accounts(db, fleet.accounts, datetime.now(UTC))
        await register_policy_cases(db, fleet.policy_cases, datetime.now(UTC))
    finally:
        await db.close()


def start_stack(options: StackOptions, escalate: threading.Event | None = None) -> LocalStack:
    """Start everything and wait until the API answers and every gateway is online; from then
    on a supervisor restarts any part that dies, until `stop()`.

    Refuses (StateDirBusyError) while another stack runs in the same state directory. If the
    start fails, what was started is stopped (at once when `escalate` is set).
    """
    state = options.state_dir
    lock = StateDirLock(state).acquire()
    try:
        if state.exists():
            shutil.rmtree(state)
        (state / "logs").mkdir(parents=True)
        fleet = options.fleet or build_demo_fleet(
            meters=options.meters,
            gateways=options.gateways,
            disconnected_share=options.disconnected_share,
            now=options.policy_clock,
        )
    except BaseException:
        lock.release()
        raise
    stack = LocalStack(options, StackSecrets.from_env_or_generate(), fleet, lock=lock)
    try:
        _start_processes(stack)
        if options.supervise:
            stack.supervisor = Supervisor(stack.parts(), options.restart_policy).start()
    except BaseException:
        stack.stop(escalate)
        raise
    return stack


def _start_processes(stack: LocalStack) -> None:
    options, state = stack.options, stack.options.state_dir.resolve()
    stack.broker_credentials = ensure_credentials(
        options.broker_credentials_dir.resolve(),
        [CLOUD_USER, *stack.fleet.dcu_ids],
        server_hosts=[options.host, "localhost", "127.0.0.1"],
    )
    stack.broker = start_secure_broker(
        state / "broker",
        stack.broker_credentials,
        BrokerConfig(host=options.host, port=options.mqtt_port),
        stack.launcher,
    )
    stack.link_port = options.link_port or free_port()
    fleet_file = stack.fleet.write_sim_fleet(state / "fleet.json")
    stack.sim = _start_sim(stack, fleet_file, state / "logs")
    stack.database_url = options.database_url or f"sqlite+aiosqlite:///{state / 'cloud.sqlite3'}"
    asyncio.run(_seed(stack.database_url, stack.fleet))
    for index in range(options.clouds):
        port = options.port if index == 0 else free_port(options.host)
        stack.clouds.append(_start_cloud(stack, index + 1, port, state / "logs"))
        stack.api_urls.append(f"http://{options.host}:{port}")
    for cloud, url in zip(stack.clouds, stack.api_urls, strict=True):
        cloud.wait_port(options.host, int(url.rsplit(":", 1)[1]))
    for dcu_id in stack.fleet.dcu_ids:
        stack.gateways[dcu_id] = _start_gateway(stack, dcu_id, state)
    _wait_gateways_online(stack, timeout_s=30.0)
    (state / STACK_FILE).write_text(json.dumps(stack.describe(), indent=1))


def _start_sim(stack: LocalStack, fleet_file: Path, logs: Path) -> ManagedProcess:
    options = stack.options
    sim = ManagedProcess(
        "meters",
        _python("firmware_sim"),
        logs / "sim.log",
        die_with_parent=True,
        launch=stack.launcher,
        env=_child_env(
            {
                "SWITCHYARD_SIM_FLEET_FILE": str(fleet_file),
                "SWITCHYARD_SIM_LINK_HOST": options.host,
                "SWITCHYARD_SIM_LINK_PORT": str(stack.link_port),
                "SWITCHYARD_SIM_LATENCY_MS": str(options.link_latency_ms),
                "SWITCHYARD_SIM_TIME_SCALE": str(options.time_scale),
                # The meters' non-volatile memory: a restarted simulator finds its fleet again.
                "SWITCHYARD_SIM_STATE_DIR": str(logs.parent / "sim"),
                **options.sim_env,
            }
        ),
    ).start()
    sim.wait_port(options.host, stack.link_port)
    return sim


def _start_cloud(stack: LocalStack, number: int, port: int, logs: Path) -> ManagedProcess:
    options, s = stack.options, stack.secrets
    assert stack.broker is not None and stack.broker_credentials is not None
    mqtt_port = options.cloud_mqtt_port or stack.broker.port
    return ManagedProcess(
        f"cloud-{number}",
        _python("cloud.main"),
        logs / f"cloud-{number}.log",
        die_with_parent=True,
        launch=stack.launcher,
        env=_child_env(
            {
                "SWITCHYARD_DEV_MODE": "true",
                "SWITCHYARD_INSTANCE_ID": f"cloud-{number}",
                "SWITCHYARD_DATABASE_URL": stack.database_url,
                "SWITCHYARD_HTTP_HOST": options.host,
                "SWITCHYARD_HTTP_PORT": str(port),
                "SWITCHYARD_MQTT_HOST": stack.broker.host,
                "SWITCHYARD_MQTT_PORT": str(mqtt_port),
                **_mqtt_env(stack.broker_credentials, CLOUD_USER),
                "SWITCHYARD_OPERATOR_TOKEN": s.operator_token,
                "SWITCHYARD_VIEWER_TOKEN": s.viewer_token,
                "SWITCHYARD_WEBHOOK_SECRET": s.webhook_secret,
                "SWITCHYARD_SIGNING_KEY_ID": s.signing_key_id,
                "SWITCHYARD_SIGNING_PRIVATE_KEY": s.signing_private_key,
                "SWITCHYARD_TELEMETRY_SPOOL_DIR": str(
                    stack.options.state_dir.resolve() / "telemetry-spool"
                ),
                **_influx_env(options),
                **_policy_env(options),
                **options.cloud_env,
            }
        ),
    ).start()


def _start_gateway(stack: LocalStack, dcu_id: str, state: Path) -> ManagedProcess:
    options = stack.options
    assert stack.broker is not None and stack.broker_credentials is not None
    mqtt_port = options.gateway_mqtt_port or stack.broker.port
    return ManagedProcess(
        f"gateway {dcu_id}",
        _python("edge_gateway"),
        state / "logs" / f"gateway-{dcu_id}.log",
        die_with_parent=True,
        launch=stack.launcher,
        env=_child_env(
            {
                "SWITCHYARD_DCU_ID": dcu_id,
                "SWITCHYARD_MQTT_HOST": stack.broker.host,
                "SWITCHYARD_MQTT_PORT": str(mqtt_port),
                **_mqtt_env(stack.broker_credentials, dcu_id),
                "SWITCHYARD_LINK_HOST": options.host,
                "SWITCHYARD_LINK_PORT": str(stack.link_port),
                "SWITCHYARD_TRUSTED_KEYS": stack.secrets.trusted_keys_json,
                "SWITCHYARD_STATE_DIR": str(state / "edge"),
                "SWITCHYARD_TELEMETRY_INTERVAL_S": str(options.telemetry_interval_s),
                **options.gateway_env,
            }
        ),
    ).start()


def _policy_env(options: StackOptions) -> dict[str, str]:
    if options.policy_clock is None:
        return {}
    return {"SWITCHYARD_POLICY_CLOCK": options.policy_clock.isoformat()}


def _influx_env(options: StackOptions) -> dict[str, str]:
    if options.influx_url is None:
        return {}
    return {
        "SWITCHYARD_INFLUX_URL": options.influx_url,
        "SWITCHYARD_INFLUX_TOKEN": os.environ.get("SWITCHYARD_INFLUX_TOKEN", "dev-token"),
    }


def _wait_gateways_online(stack: LocalStack, timeout_s: float) -> None:
    headers = {"Authorization": f"Bearer {stack.secrets.viewer_token}"}
    deadline = time.monotonic() + timeout_s
    expected = set(stack.fleet.dcu_ids)
    online: set[str] = set()
    with httpx.Client(base_url=stack.api_url, timeout=5.0, headers=headers) as client:
        while time.monotonic() < deadline:
            for process in stack.processes:
                if not process.alive():
                    raise ProcessStartError(f"{process.name} exited:\n{process.tail()}")
            response = client.get("/api/v1/gateways")
            if response.status_code == 200:
                online = {g["dcu_id"] for g in response.json() if g["online"]}
                if expected <= online:
                    return
            time.sleep(0.1)
    missing = ", ".join(sorted(expected - online))
    raise ProcessStartError(f"gateways not online after {timeout_s:.0f}s: {missing}")
