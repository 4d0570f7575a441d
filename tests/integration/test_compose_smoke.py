"""The stack of compose.yaml, for real: up, every service healthy, a bill paid, the relay
connected. Runs wherever a Docker engine answers; skipped, with the reason, elsewhere."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloud.payments.webhook import sign_body
from switchyard.compose_env import compose_env, render
from switchyard.demo import build_demo_fleet
from switchyard.pay import webhook_body
from switchyard.procs import free_port
from tests.support.wait import wait_until

docker = pytest.importorskip("docker", reason="the Docker SDK for Python is not installed")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 900
SEED_METERS = 20


def _engine() -> object:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine answers here ({exc.__class__.__name__}: {exc})")
    return client


def _compose_command() -> list[str]:
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("a Docker engine answers, but neither `docker compose` nor docker-compose exists")


@dataclass
class ComposeStack:
    """One project brought up from compose.yaml with fresh secrets."""

    project: str
    env: dict[str, str]
    env_file: Path
    compose: list[str]
    client: object

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SWITCHYARD_HTTP_PORT']}"

    def run(self, *args: str, timeout_s: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        argv = [*self.compose, "-p", self.project, "--env-file", str(self.env_file)]
        argv += ["-f", str(ROOT / "compose.yaml"), *args]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)

    def containers(self) -> list[object]:
        label = f"com.docker.compose.project={self.project}"
        return list(self.client.containers.list(all=True, filters={"label": label}))  # type: ignore[attr-defined]

    def logs(self) -> str:
        return "\n".join(
            f"--- {c.name}\n{c.logs(tail=40).decode(errors='replace')}"  # type: ignore[attr-defined]
            for c in self.containers()
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    client = _engine()
    compose = _compose_command()
    env = compose_env() | {
        "SWITCHYARD_HTTP_PORT": str(free_port()),
        "GRAFANA_PORT": str(free_port()),
        "SWITCHYARD_SEED_METERS": str(SEED_METERS),
        "SWITCHYARD_TELEMETRY_INTERVAL_S": "2",
    }
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text(render(env))
    running = ComposeStack(f"sy-smoke-{uuid.uuid4().hex[:8]}", env, env_file, compose, client)
    try:
        up = running.run("up", "--build", "--detach", "--wait", "--wait-timeout", "600")
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{running.logs()}"
        yield running
    finally:
        running.run("down", "--volumes", "--remove-orphans", timeout_s=300)


def test_every_service_is_healthy_and_the_seed_finished(stack: ComposeStack) -> None:
    states = {}
    for container in stack.containers():
        attrs = container.attrs  # type: ignore[attr-defined]
        service = attrs["Config"]["Labels"]["com.docker.compose.service"]
        health = attrs["State"].get("Health", {}).get("Status")
        states[service] = (attrs["State"]["Status"], health, attrs["State"]["ExitCode"])
    assert states.pop("seed") == ("exited", None, 0), stack.logs()
    assert set(states) == {
        "mosquitto",
        "postgres",
        "influxdb",
        "grafana",
        "sim",
        "cloud",
        "gateway-1",
        "gateway-2",
    }
    assert all(state[:2] == ("running", "healthy") for state in states.values()), states


def test_a_paid_bill_connects_the_relay(stack: ComposeStack) -> None:
    account = build_demo_fleet(meters=SEED_METERS, gateways=2).disconnected()[0]
    viewer = {"Authorization": f"Bearer {stack.env['SWITCHYARD_VIEWER_TOKEN']}"}
    with httpx.Client(base_url=stack.api_url, timeout=10.0) as api:
        wait_until(
            "both gateways online",
            lambda: api.get("/api/v1/gateways", headers=viewer).json(),
            lambda gateways: len(gateways) == 2 and all(g["online"] for g in gateways),
            timeout_s=120,
            every_s=0.5,
        )
        dues = api.get(f"/api/v1/accounts/{account.account_id}/dues").json()
        assert dues["relay"] == "disconnected" and dues["total_payable_paise"] > 0
        body = webhook_body(account.account_id, dues["total_payable_paise"], "pay_compose_0001")
        paid = api.post(
            "/api/v1/payments/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": sign_body(body, stack.env["SWITCHYARD_WEBHOOK_SECRET"]),
                "X-Razorpay-Event-Id": "evt_compose_0001",
            },
        )
        assert paid.status_code == 200 and paid.json()["status"] == "processed", paid.text
        wait_until(
            f"{account.account_id}'s relay to be switched on",
            lambda: api.get(f"/api/v1/accounts/{account.account_id}/dues").json(),
            lambda after: after["relay"] in ("connected", "ready_for_reconnection"),
            timeout_s=60,
            every_s=0.5,
        )
