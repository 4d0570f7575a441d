"""compose.yaml and the Dockerfile, checked without a Docker engine: services, healthchecks,
start order, and secrets that only ever come from the environment."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchyard.broker_credentials import CLOUD_USER, dynsec_config
from switchyard.cli import build_parser
from switchyard.compose_env import compose_env, render
from wire.limits import MAX_PACKET_BYTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYTHON_SERVICES = ("seed", "sim", "cloud", "gateway-1", "gateway-2")
ONE_SHOT = {"seed"}
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:\?|:-|\?|-)([^}]*))?\}")
_SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "PRIVATE_KEY", "TRUSTED_KEYS")


def _is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)


def test_the_whole_stack_is_there() -> None:
    assert set(SERVICES) == {
        "mosquitto",
        "influxdb",
        "grafana",
        "postgres",
        "seed",
        "sim",
        "cloud",
        "gateway-1",
        "gateway-2",
    }
    gateways = {SERVICES[g]["environment"]["SWITCHYARD_DCU_ID"] for g in ("gateway-1", "gateway-2")}
    assert gateways == {"DCU01", "DCU02"}


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check and check["test"], f"{name} has no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert SERVICES[name].get("restart") == "unless-stopped"


def test_start_order_waits_on_health_and_on_the_seed() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, rule in depends.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOT and SERVICES[target]["restart"] == "no"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition!r} does not wait")
    assert SERVICES["cloud"]["depends_on"]["seed"]["condition"] == (
        "service_completed_successfully"
    )
    for gateway in ("gateway-1", "gateway-2"):
        assert SERVICES[gateway]["depends_on"]["cloud"]["condition"] == "service_healthy"
    assert SERVICES["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"


def test_secrets_have_no_default_and_are_required() -> None:
    references = _REFERENCE.findall(COMPOSE_TEXT)
    assert references
    for name, operator, _ in references:
        if _is_secret(name):
            assert operator == ":?", f"${{{name}}} must be required (:?), never defaulted"
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if _is_secret(key) or (isinstance(value, str) and "://" in value and "@" in value):
                assert "${" in str(value), f"{name}: {key} is a literal secret"


def test_the_development_env_file_satisfies_every_required_variable() -> None:
    required = {name for name, operator, _ in _REFERENCE.findall(COMPOSE_TEXT) if operator == ":?"}
    values = compose_env()
    assert required <= set(values), f"compose_env lacks {sorted(required - set(values))}"
    rendered = dict(
        line.split("=", 1) for line in render(values).splitlines() if line and line[0] != "#"
    )
    assert all(value.startswith("'") and value.endswith("'") for value in rendered.values())
    assert compose_env()["SWITCHYARD_OPERATOR_TOKEN"] != values["SWITCHYARD_OPERATOR_TOKEN"]


def test_python_services_run_real_subcommands_of_one_image() -> None:
    parser = build_parser()
    for name in PYTHON_SERVICES:
        service = SERVICES[name]
        assert service["build"] == "." and service["image"] == "switchyard:local"
        if "command" in service:
            parser.parse_args(service["command"])  # exits (fails the test) if unknown
    assert SERVICES["seed"]["entrypoint"] == ["python", "-m", "switchyard.seed"]
    assert (ROOT / "switchyard" / "seed.py").exists()


def test_mounted_files_exist_and_the_broker_refuses_anonymous_clients() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
    broker = (ROOT / "compose/mosquitto/mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in broker
    assert any(line.startswith("password_file ") for line in broker)


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if "build" in service:
            continue
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image!r}"


def test_dockerfile_follows_the_usual_rules() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms and all(":" in image and "latest" not in image for image in froms)
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the final image must not run as root"
    assert not any(line.startswith("ADD ") for line in lines), "COPY, not ADD"
    pip = [line for line in lines if "pip install" in line]
    assert pip and all("--no-cache-dir" in line for line in pip)
    # The image installs the versions the suite passed with, like make run and make test.
    assert all("-c constraints.txt" in line for line in pip)
    assert any(line.startswith("COPY ") and "constraints.txt" in line.split() for line in lines)
    copied = {
        line.split()[1].rstrip("/")
        for line in lines
        if line.startswith("COPY ") and "--from" not in line
    }
    for package in ("wire", "dlms", "cloud", "edge_gateway", "firmware_sim", "switchyard"):
        assert package in copied, f"the image lacks the {package} package"
    assert 'ENTRYPOINT ["switchyard"]' in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_each_part_has_its_own_broker_user_with_the_local_stacks_protections() -> None:
    cloud_env = SERVICES["cloud"]["environment"]
    assert cloud_env["SWITCHYARD_MQTT_USERNAME"] == CLOUD_USER
    passwords = {cloud_env["SWITCHYARD_MQTT_PASSWORD"]}
    for gateway in ("gateway-1", "gateway-2"):
        env = SERVICES[gateway]["environment"]
        assert "SWITCHYARD_MQTT_USERNAME" not in env  # the DCU id, which the ACL expects
        passwords.add(env["SWITCHYARD_MQTT_PASSWORD"])
    assert len(passwords) == 3, "no two parts share a password"
    command = " ".join(SERVICES["mosquitto"]["command"])
    for user in (CLOUD_USER, "DCU01", "DCU02"):
        assert f"/mosquitto/data/passwd {user} " in command
    conf = (ROOT / "compose/mosquitto/mosquitto.conf").read_text().splitlines()
    assert "acl_file /mosquitto/config/acl" in conf
    assert "plugin /usr/lib/mosquitto_dynamic_security.so" in conf
    assert f"max_packet_size {MAX_PACKET_BYTES}" in conf
    mounted = (ROOT / "compose/mosquitto/dynamic-security.json").read_text()
    assert json.loads(mounted) == dynsec_config([CLOUD_USER, "DCU01", "DCU02"])
    volumes = SERVICES["mosquitto"]["volumes"]
    assert "./mosquitto/acl:/mosquitto/config/acl:ro" in volumes
