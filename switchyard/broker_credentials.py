"""Who may use the broker and for what: the ACL, the password file, and a directory of TLS
certificates and passwords that is generated on first use and kept afterwards."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from switchyard.mqtt_pki import CertifiedKey, issue, make_ca
from switchyard.procs import ProcessStartError
from wire.ids import gateway_client_id, is_valid_id
from wire.topics import TopicKind, cloud_filter, gateway_command_filter, shared

# '@' never appears in a DCU id (wire.ids.ID_PATTERN), so no gateway user can be the cloud and
# the `%u` patterns below, applied to the cloud's own name, match no real DCU's topics.
CLOUD_USER = "cloud@switchyard"

ACL_TEXT = f"""\
# Switchyard broker ACL (mosquitto acl_file). Kept identical to ACL_TEXT in
# switchyard/broker_credentials.py, which `make run` and the tests use (a test compares them).
#
# A gateway's MQTT user name is its DCU id: it reads only its own meters' commands and writes
# only its own acks, events, telemetry and state (the Will included). Nothing else.
pattern read sy/v1/dcu/%u/meter/+/cmd
pattern write sy/v1/dcu/%u/meter/+/ack
pattern write sy/v1/dcu/%u/meter/+/event
pattern write sy/v1/dcu/%u/telemetry
pattern write sy/v1/dcu/%u/state

# The cloud publishes commands (and may watch its own) and reads what gateways say (also
# through $share/cloud/...).
user {CLOUD_USER}
topic readwrite sy/v1/dcu/+/meter/+/cmd
topic read sy/v1/dcu/+/meter/+/ack
topic read sy/v1/dcu/+/meter/+/event
topic read sy/v1/dcu/+/telemetry
topic read sy/v1/dcu/+/state
"""

_PASSWORD_BYTES = 24


# Mosquitto 2.0's acl_file never checks a SUBSCRIBE (it grants every filter and checks read
# access per delivery), so a gateway could join the cloud's `$share/cloud/...` groups and be
# handed, then denied, other DCUs' acks. The dynamic-security plugin, consulted first, refuses
# every subscription but a gateway's own command filter and binds each user to one client id;
# it defers publish and delivery checks to the acl_file and passwords to the password file.
def dynsec_config(users: Sequence[str]) -> dict[str, object]:
    """The dynamic-security plugin's configuration for these users."""
    clients: list[dict[str, object]] = []
    roles: list[dict[str, object]] = []
    for user in sorted(users):
        check_user(user)
        client: dict[str, object] = {"username": user, "roles": [{"rolename": user}]}
        if user == CLOUD_USER:
            # Several cloud processes share this user, each with its own id (its instance).
            allowed = [f for k in TopicKind for f in _both(k)]
        else:
            client["clientid"] = gateway_client_id(user)
            allowed = [gateway_command_filter(user)]
        clients.append(client)
        acls = [_subscribe(topic_filter, allow=True, priority=1) for topic_filter in allowed]
        roles.append({"rolename": user, "acls": [*acls, _subscribe("#", allow=False)]})
    return {
        # Deferring (false) hands publish and delivery checks to the acl_file.
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def _both(kind: TopicKind) -> tuple[str, str]:
    return cloud_filter(kind), shared(cloud_filter(kind))


def _subscribe(topic_filter: str, *, allow: bool, priority: int = 0) -> dict[str, object]:
    return {
        "acltype": "subscribePattern",
        "topic": topic_filter,
        "priority": priority,
        "allow": allow,
    }


def write_dynsec(path: Path, users: Sequence[str]) -> Path:
    """Write the dynamic-security plugin's configuration for these users."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dynsec_config(users), indent=1) + "\n")
    return path


class CredentialsError(ValueError):
    """A user name or credentials directory that cannot be used."""


def check_user(user: str) -> str:
    """Accept the cloud's user or a gateway's (a valid DCU id); raise CredentialsError otherwise."""
    if user != CLOUD_USER and not is_valid_id(user):
        raise CredentialsError(f"{user!r} is neither {CLOUD_USER!r} nor a valid DCU id")
    return user


def mosquitto_passwd_binary() -> str:
    """Path of mosquitto_passwd, which ships with Mosquitto."""
    for candidate in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ProcessStartError(
        "mosquitto_passwd not found: install it with `apt-get install mosquitto`"
    )


def write_password_file(path: Path, passwords: dict[str, str]) -> Path:
    """Write a Mosquitto password file holding only salted hashes of these passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".passwd-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as plain:
            plain.writelines(f"{check_user(u)}:{p}\n" for u, p in sorted(passwords.items()))
        # -U hashes every line of the file in place; the plain text never leaves this directory.
        subprocess.run(
            [mosquitto_passwd_binary(), "-U", temporary], check=True, capture_output=True
        )
        Path(temporary).replace(path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def write_acl(path: Path) -> Path:
    """Write the project's ACL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ACL_TEXT)
    return path


@dataclass(frozen=True)
class BrokerCredentials:
    """A credentials directory: CA, server and client certificates, passwords and their hashes."""

    directory: Path
    passwords: dict[str, str]

    @property
    def ca_cert(self) -> Path:
        """The CA certificate every client and the broker trust."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key; only needed to issue certificates."""
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        """The broker's certificate."""
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        """The broker's private key."""
        return self.directory / "server.key"

    @property
    def password_file(self) -> Path:
        """The Mosquitto password file (hashes only)."""
        return self.directory / "passwd"

    @property
    def dynsec_file(self) -> Path:
        """The dynamic-security plugin's configuration for these users."""
        return self.directory / "dynamic-security.json"

    @property
    def passwords_file(self) -> Path:
        """Plain passwords to hand to each client (mode 0600)."""
        return self.directory / "users.json"

    def client_cert(self, user: str) -> Path:
        """A user's client certificate."""
        return self.directory / "clients" / f"{user}.crt"

    def client_key(self, user: str) -> Path:
        """A user's client private key."""
        return self.directory / "clients" / f"{user}.key"

    def password(self, user: str) -> str:
        """A user's plain password."""
        return self.passwords[user]


def _read_passwords(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise CredentialsError(f"{path} is not a JSON object of user: password")
    return {str(user): str(password) for user, password in stored.items()}


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _server_covers(cert_path: Path, hosts: Sequence[str]) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    present = {str(v) for v in names.get_values_for_type(x509.IPAddress)}
    present |= set(names.get_values_for_type(x509.DNSName))
    return set(hosts) <= present


def ensure_credentials(
    directory: Path,
    users: Sequence[str],
    *,
    server_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    rotate_passwords: Sequence[str] = (),
    reissue: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> BrokerCredentials:
    """Create whatever is missing for these users (CA, certificates, passwords) and keep the rest.

    `rotate_passwords` gets new passwords, `reissue` new client certificates ("server" for the
    broker's), `remove` drops users from the password file so they can no longer connect.
    """
    for user in [*users, *rotate_passwords, *remove]:
        check_user(user)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    creds = BrokerCredentials(directory, _read_passwords(directory / "users.json"))
    if not (creds.ca_cert.exists() and creds.ca_key.exists()):
        make_ca().write(creds.ca_cert, creds.ca_key)
    ca = CertifiedKey.read(creds.ca_cert, creds.ca_key)
    if (
        "server" in reissue
        or not creds.server_cert.exists()
        or not _server_covers(creds.server_cert, server_hosts)
    ):
        issue(ca, server_hosts[0], server_hosts=server_hosts).write(
            creds.server_cert, creds.server_key
        )
    passwords = {u: p for u, p in creds.passwords.items() if u not in remove}
    for user in users:
        if user not in passwords:
            passwords[user] = secrets.token_urlsafe(_PASSWORD_BYTES)
        if user in reissue or not creds.client_cert(user).exists():
            issue(ca, user).write(creds.client_cert(user), creds.client_key(user))
    for user in rotate_passwords:
        passwords[user] = secrets.token_urlsafe(_PASSWORD_BYTES)
    for user in remove:
        creds.client_cert(user).unlink(missing_ok=True)
        creds.client_key(user).unlink(missing_ok=True)
    if passwords != creds.passwords or not creds.password_file.exists():
        _write_private(creds.passwords_file, json.dumps(passwords, indent=1, sort_keys=True))
        write_password_file(creds.password_file, passwords)
    if passwords != creds.passwords or not creds.dynsec_file.exists():
        write_dynsec(creds.dynsec_file, sorted(passwords))
    return BrokerCredentials(directory, passwords)
