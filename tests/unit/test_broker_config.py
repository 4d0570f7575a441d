"""The broker's security configuration: the production files in mosquitto/ say exactly what the
generated configuration says, and credentials are made once, kept, rotated and removed."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from switchyard.broker import BrokerConfig, BrokerSecurity, security_lines, write_config
from switchyard.broker_credentials import (
    ACL_TEXT,
    CLOUD_USER,
    CredentialsError,
    ensure_credentials,
)
from wire.ids import is_valid_id

REPO = Path(__file__).resolve().parents[2]
CONTAINER = BrokerSecurity(
    ca_file=Path("/mosquitto/config/secrets/ca.crt"),
    cert_file=Path("/mosquitto/config/secrets/server.crt"),
    key_file=Path("/mosquitto/config/secrets/server.key"),
    password_file=Path("/mosquitto/config/secrets/passwd"),
    acl_file=Path("/mosquitto/config/acl"),
    dynsec_file=Path("/mosquitto/config/secrets/dynamic-security.json"),
    dynsec_plugin=Path("/usr/lib/mosquitto_dynamic_security.so"),
)


def _directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_production_config_has_the_generated_security_after_its_only_listener() -> None:
    lines = _directives((REPO / "mosquitto/mosquitto.conf").read_text())
    listeners = [line for line in lines if line.startswith("listener")]
    assert listeners == ["listener 8883"]
    after = lines[lines.index("listener 8883") + 1 :]
    assert after[: len(security_lines(CONTAINER))] == security_lines(CONTAINER)
    assert "allow_anonymous true" not in lines


def test_repository_acl_is_the_one_the_broker_is_started_with() -> None:
    assert (REPO / "mosquitto/acl").read_text() == ACL_TEXT


def test_acl_confines_gateways_to_their_own_dcu_and_the_cloud_name_is_no_dcu() -> None:
    rules = _directives(ACL_TEXT)
    patterns = [line for line in rules if line.startswith("pattern")]
    assert patterns, "gateway rules"
    assert all("/dcu/%u/" in line for line in patterns)
    assert [line for line in patterns if line.startswith("pattern read")] == [
        "pattern read sy/v1/dcu/%u/meter/+/cmd"
    ]
    assert not is_valid_id(CLOUD_USER)
    cloud = rules[rules.index(f"user {CLOUD_USER}") + 1 :]
    # The cloud writes only commands (and may read them back); everything else it only reads.
    assert [line for line in cloud if line.startswith(("topic write", "topic readwrite"))] == [
        "topic readwrite sy/v1/dcu/+/meter/+/cmd"
    ]


def test_generated_config_is_tls_only_when_secured(tmp_path: Path) -> None:
    secured = write_config(tmp_path / "s", BrokerConfig(security=CONTAINER), 8883).read_text()
    plain = write_config(tmp_path / "p", BrokerConfig(), 1883).read_text()
    assert "allow_anonymous false" in secured and "allow_anonymous true" not in secured
    assert "require_certificate true" in secured
    assert re.findall(r"^listener .*$", secured, re.MULTILINE) == ["listener 8883 127.0.0.1"]
    assert "allow_anonymous true" in plain


def test_credentials_are_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path, [CLOUD_USER, "DCU01"])
    ca_before = first.ca_cert.read_bytes()
    second = ensure_credentials(tmp_path, [CLOUD_USER, "DCU01", "DCU02"])

    assert second.ca_cert.read_bytes() == ca_before
    assert second.password("DCU01") == first.password("DCU01")
    assert set(second.passwords) == {CLOUD_USER, "DCU01", "DCU02"}
    hashed = second.password_file.read_text()
    assert all(password not in hashed for password in second.passwords.values())
    assert sorted(line.split(":")[0] for line in hashed.splitlines()) == sorted(second.passwords)
    for private in (second.ca_key, second.server_key, second.client_key("DCU02")):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(second.passwords_file.stat().st_mode) == 0o600
    assert json.loads(second.passwords_file.read_text()) == second.passwords


def test_certificates_chain_to_the_ca_with_the_right_purpose(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path, ["DCU01"], server_hosts=["broker.example", "10.0.0.5"])
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(creds.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(creds.client_cert("DCU01").read_bytes())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    for cert in (server, client):
        cert.verify_directly_issued_by(ca)  # raises unless signed by our CA
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.subject.rfc4514_string().startswith("CN=DCU01")


def test_rotation_reissue_and_removal(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path, [CLOUD_USER, "DCU01", "DCU02"])
    old_cert = first.client_cert("DCU01").read_bytes()
    rotated = ensure_credentials(
        tmp_path,
        [CLOUD_USER, "DCU01"],
        rotate_passwords=["DCU01"],
        reissue=["DCU01"],
        remove=["DCU02"],
    )
    assert rotated.password("DCU01") != first.password("DCU01")
    assert rotated.password(CLOUD_USER) == first.password(CLOUD_USER)
    assert rotated.client_cert("DCU01").read_bytes() != old_cert
    assert "DCU02" not in rotated.passwords
    assert not rotated.client_cert("DCU02").exists()
    assert "DCU02:" not in rotated.password_file.read_text()


@pytest.mark.parametrize("user", ["a/b", "+", "#", "$SYS", "DCU 1", ""])
def test_only_the_cloud_and_valid_dcu_ids_are_users(tmp_path: Path, user: str) -> None:
    with pytest.raises(CredentialsError):
        ensure_credentials(tmp_path, [user])


def test_every_user_has_a_dynsec_client_and_each_gateway_is_bound_to_its_client_id(
    tmp_path: Path,
) -> None:
    creds = ensure_credentials(tmp_path / "creds", [CLOUD_USER, "DCU01", "DCU02"])
    config = json.loads(creds.dynsec_file.read_text())
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == set(creds.passwords)
    assert clients["DCU01"]["clientid"] == "edge-DCU01"
    assert "clientid" not in clients[CLOUD_USER]  # one user, one id per cloud process
    assert all("password" not in c for c in clients.values())  # passwords: password_file
    assert config["defaultACLAccess"] == dict.fromkeys(
        ("publishClientSend", "publishClientReceive", "subscribe", "unsubscribe"), False
    )
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    allowed = [a["topic"] for a in roles["DCU01"] if a["allow"]]
    assert allowed == ["sy/v1/dcu/DCU01/meter/+/cmd"]
    assert {"acltype": "subscribePattern", "topic": "#", "priority": 0, "allow": False} in roles[
        "DCU01"
    ]
    ensure_credentials(creds.directory, [CLOUD_USER, "DCU01"], remove=["DCU02"])
    after = json.loads(creds.dynsec_file.read_text())
    assert {c["username"] for c in after["clients"]} == {CLOUD_USER, "DCU01"}
