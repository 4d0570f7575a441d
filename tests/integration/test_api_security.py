"""Roles on every route, named tokens from the CLI, the audit log and the manual-command rate
limit — a production-mode cloud process behind real HTTP, on the secured broker."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.api.guard import MAX_BODY_BYTES
from switchyard.broker import Broker
from switchyard.broker_credentials import BrokerCredentials
from tests.support.secure_cloud import CloudProcess, run_cli, start_cloud_process

pytestmark = pytest.mark.integration

StartCloud = Callable[..., CloudProcess]

# Every route of the API and who may call it. A route missing here fails the test below.
PUBLIC, VIEWER, OPERATOR, HMAC = "public", "viewer", "operator", "hmac"
ROUTE_ROLES = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/accounts/{account_id}/dues"): PUBLIC,
    ("GET", "/api/v1/accounts"): VIEWER,
    ("GET", "/api/v1/accounts/{account_id}"): VIEWER,
    ("POST", "/api/v1/payments/webhook"): HMAC,
    ("GET", "/api/v1/meters"): VIEWER,
    ("GET", "/api/v1/meters/{meter_id}"): VIEWER,
    ("POST", "/api/v1/meters/{meter_id}/commands"): OPERATOR,
    ("GET", "/api/v1/commands/{command_id}"): VIEWER,
    ("GET", "/api/v1/commands"): VIEWER,
    ("GET", "/api/v1/gateways"): VIEWER,
    ("GET", "/api/v1/audit"): VIEWER,
    ("GET", "/api/v1/payments/conflicts"): VIEWER,
    ("GET", "/api/v1/meters/{meter_id}/readings"): VIEWER,
    ("POST", "/api/v1/accounts/{account_id}/bills"): OPERATOR,
    ("POST", "/api/v1/accounts/{account_id}/adjustments"): OPERATOR,
    ("GET", "/api/v1/accounts/{account_id}/statement"): VIEWER,
    ("GET", "/api/v1/accounts/{account_id}/protections"): VIEWER,
    ("POST", "/api/v1/accounts/{account_id}/protections"): OPERATOR,
    ("DELETE", "/api/v1/accounts/{account_id}/protections/{protection_id}"): OPERATOR,
    ("GET", "/api/v1/accounts/{account_id}/disputes"): VIEWER,
    ("POST", "/api/v1/accounts/{account_id}/disputes"): OPERATOR,
    ("POST", "/api/v1/accounts/{account_id}/disputes/{dispute_id}/resolve"): OPERATOR,
    ("POST", "/api/v1/accounts/{account_id}/notices"): OPERATOR,
    ("GET", "/api/v1/notifications"): VIEWER,
    ("POST", "/api/v1/notice-runs"): OPERATOR,
    ("GET", "/api/v1/policy"): VIEWER,
    ("PUT", "/api/v1/policy/kill-switch"): OPERATOR,
    ("POST", "/api/v1/disconnection-runs"): OPERATOR,
    ("GET", "/api/v1/disconnection-runs"): VIEWER,
    ("GET", "/api/v1/disconnection-runs/{run_id}"): VIEWER,
    ("POST", "/api/v1/disconnection-runs/{run_id}/quarantines/{dcu_id}/confirm"): OPERATOR,
    ("POST", "/api/v1/disconnection-runs/{run_id}/quarantines/{dcu_id}/reject"): OPERATOR,
}
PATH_VALUES = {
    "account_id": "ACC11",
    "meter_id": "MTR11",
    "command_id": "01a21f2c-2ff1-7000-aac9-7dc264b3f914",
    "protection_id": "1",
    "dispute_id": "1",
    "run_id": "01a21f2c-2ff1-7000-aac9-7dc264b3f914",
    "dcu_id": "DCU01",
}


@pytest.fixture
def start_cloud(
    secure_broker: Broker,
    broker_credentials: BrokerCredentials,
    database_url: str,
    tmp_path: Path,
) -> Iterator[StartCloud]:
    started: list[CloudProcess] = []

    def start(**settings: str) -> CloudProcess:
        cloud = start_cloud_process(
            secure_broker, broker_credentials, database_url, tmp_path, **settings
        )
        started.append(cloud)
        return cloud

    yield start
    for cloud in started:
        cloud.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_token(cloud: CloudProcess, name: str, role: str) -> tuple[str, str]:
    """`switchyard token create`; the token id and the token."""
    out = run_cli(cloud.env, "token", "create", "--name", name, "--role", role)
    token = out.strip().splitlines()[-1]
    match = re.match(r"^sy_([0-9a-f]{12})_", token)
    assert match is not None, out
    return match.group(1), token


def call(api: httpx.Client, method: str, path: str, token: str | None) -> httpx.Response:
    url = path.format(**PATH_VALUES)
    headers = bearer(token) if token is not None else {}
    body: dict[str, Any] | None = None
    if method == "POST":
        body = {"action": "connect", "reason": "role check"}
    return api.request(method, url, headers=headers, json=body)


def test_every_route_enforces_its_role(start_cloud: StartCloud) -> None:
    cloud = start_cloud()
    _, named_viewer = create_token(cloud, "auditor", "viewer")
    revoked_id, revoked = create_token(cloud, "leaver", "operator")
    run_cli(cloud.env, "token", "revoke", revoked_id)
    s = cloud.secrets
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        spec = api.get("/openapi.json").json()
        served = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
        assert served == set(ROUTE_ROLES), "every route needs an entry in ROUTE_ROLES"

        outcomes: dict[tuple[str, str], dict[str, int]] = {}
        for method, path in ROUTE_ROLES:
            outcomes[(method, path)] = {
                who: call(api, method, path, token).status_code
                for who, token in {
                    "nobody": None,
                    "unknown": "not-a-token-at-all",
                    "forged named": "sy_0123456789ab_" + "A" * 43,
                    "revoked": revoked,
                    "viewer": s.viewer_token,
                    "named viewer": named_viewer,
                    "operator": s.operator_token,
                }.items()
            }

    for (method, path), role in ROUTE_ROLES.items():
        got = outcomes[(method, path)]
        where = f"{method} {path}: {got}"
        if role == PUBLIC:
            assert all(code not in (401, 403) for code in got.values()), where
        elif role == HMAC:
            assert set(got.values()) == {401}, where  # no bearer token replaces the signature
        else:
            for who in ("nobody", "unknown", "forged named", "revoked"):
                assert got[who] == 401, where
            assert got["operator"] not in (401, 403), where
            viewer_codes = {got["viewer"], got["named viewer"]}
            if role == VIEWER:
                assert not viewer_codes & {401, 403}, where
            else:
                assert viewer_codes == {403}, where


def test_a_viewer_cannot_command_and_the_attempt_is_audited(start_cloud: StartCloud) -> None:
    cloud = start_cloud()
    _, viewer = create_token(cloud, "ravi", "viewer")
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        refused = api.post(
            "/api/v1/meters/MTR12/commands",
            headers=bearer(viewer),
            json={"action": "disconnect", "reason": "viewer tries"},
        )
        commands = api.get("/api/v1/commands?meter_id=MTR12", headers=bearer(viewer)).json()
        audit = api.get("/api/v1/audit?actor=ravi", headers=bearer(viewer)).json()["items"]

    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert commands["items"] == []
    assert [(e["action"], e["outcome"], e["role"]) for e in audit] == [
        ("access.denied", "denied", "viewer")
    ]
    assert audit[0]["target"] == "POST /api/v1/meters/{meter_id}/commands"


def test_every_operator_command_is_in_the_audit_log_with_who_when_what_why(
    start_cloud: StartCloud,
) -> None:
    cloud = start_cloud()
    asha_id, asha = create_token(cloud, "asha", "operator")
    _, imran = create_token(cloud, "imran", "operator")
    requests = [
        (asha, "MTR11", "disconnect", "tamper reported by field staff"),
        (imran, "MTR12", "disconnect", "consumer asked for a safety cut"),
        (asha, "MTR11", "connect", "tamper cleared"),
        (cloud.secrets.operator_token, "MTR21", "disconnect", "break-glass token"),
    ]
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        issued = []
        for token, meter_id, action, reason in requests:
            response = api.post(
                f"/api/v1/meters/{meter_id}/commands",
                headers=bearer(token),
                json={"action": action, "reason": reason},
            )
            assert response.status_code == 202, response.text
            issued.append(response.json())
        page = api.get(
            "/api/v1/audit?action=meter.command&limit=2", headers=bearer(cloud.secrets.viewer_token)
        ).json()
        rest = api.get(
            f"/api/v1/audit?action=meter.command&cursor={page['next_cursor']}",
            headers=bearer(cloud.secrets.viewer_token),
        ).json()

    entries = list(reversed(page["items"] + rest["items"]))
    assert [e["detail"]["command_id"] for e in entries] == [c["command_id"] for c in issued]
    assert [(e["actor"], e["target"], e["detail"]["action"], e["reason"]) for e in entries] == [
        ("asha", "meter/MTR11", "disconnect", "tamper reported by field staff"),
        ("imran", "meter/MTR12", "disconnect", "consumer asked for a safety cut"),
        ("asha", "meter/MTR11", "connect", "tamper cleared"),
        ("operator", "meter/MTR21", "disconnect", "break-glass token"),
    ]
    assert entries[0]["token_id"] == asha_id
    assert all(e["outcome"] == "ok" and e["role"] == "operator" for e in entries)
    assert [c["actor"] for c in issued] == ["asha", "imran", "asha", "operator"]
    assert all(e["at"] for e in entries)


def test_free_text_with_nul_is_refused_with_422_and_nothing_recorded(
    start_cloud: StartCloud,
) -> None:
    # PostgreSQL cannot store NUL in text: Schemathesis found this as a 500 on PostgreSQL.
    cloud = start_cloud()
    operator = bearer(cloud.secrets.operator_token)
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        refused = [
            api.post(
                f"/api/v1/meters/{meter_id}/commands",
                headers=operator,
                json={"action": "disconnect", "reason": "1\x00c\u00ef"},
            )
            for meter_id in ("MTR11", "NO_SUCH_METER")
        ]
        refused.append(
            api.put(
                "/api/v1/policy/kill-switch",
                headers=operator,
                json={"engaged": True, "reason": "\x00"},
            )
        )
        commands = api.get("/api/v1/commands", headers=operator).json()
        audit = api.get("/api/v1/audit", headers=operator).json()["items"]

    assert [r.status_code for r in refused] == [422, 422, 422], [r.text for r in refused]
    assert commands["items"] == []
    assert [e["action"] for e in audit if e["action"] != "access.denied"] == []


def test_switches_take_json_booleans_only(start_cloud: StartCloud) -> None:
    # A kill switch engaged by `0.0` or a real run started by `"0"` is a guess, not a request.
    cloud = start_cloud()
    operator = bearer(cloud.secrets.operator_token)
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        answers = [
            api.put(
                "/api/v1/policy/kill-switch", headers=operator, json={"engaged": 0.0, "reason": "x"}
            ),
            api.put(
                "/api/v1/policy/kill-switch",
                headers=operator,
                json={"engaged": "yes", "reason": "x"},
            ),
            api.post("/api/v1/disconnection-runs", headers=operator, json={"dry_run": "0"}),
            api.post("/api/v1/disconnection-runs", headers=operator, json={"dry_run": 1}),
        ]
        policy = api.get("/api/v1/policy", headers=operator)
        runs = api.get("/api/v1/disconnection-runs", headers=operator)

    assert [a.status_code for a in answers] == [422, 422, 422, 422], [a.text for a in answers]
    assert policy.status_code == 200 and policy.json()["kill_switch"]["engaged"] is False
    assert runs.status_code == 200 and runs.json() == []


def test_amounts_beyond_the_maximum_are_refused_with_422_and_nothing_recorded(
    start_cloud: StartCloud,
) -> None:
    # Schemathesis found a dispute of 102907645373826744320 paise answered with a 500.
    cloud = start_cloud()
    operator = bearer(cloud.secrets.operator_token)
    too_much = 10**12 + 1
    requests = [
        ("disputes", {"kind": "dispute", "reason": "too much", "amount_paise": too_much}),
        ("adjustments", {"reference": "adj-1", "reason": "too much", "amount_paise": -too_much}),
        (
            "bills",
            {
                "bill_id": "BILL-HUGE",
                "amount_paise": 102_907_645_373_826_744_320,
                "issued_at": "2026-11-01T00:00:00+05:30",
                "due_date": "2026-11-20",
                "period_start": "2026-10-01",
                "period_end": "2026-10-31",
            },
        ),
    ]
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        before = api.get("/api/v1/accounts/ACC11/statement", headers=operator)
        answers = [
            api.post(f"/api/v1/accounts/ACC11/{path}", headers=operator, json=body)
            for path, body in requests
        ]
        after = api.get("/api/v1/accounts/ACC11/statement", headers=operator)
        disputes = api.get("/api/v1/accounts/ACC11/disputes", headers=operator)

    assert [a.status_code for a in answers] == [422, 422, 422], [a.text for a in answers]
    assert before.status_code == 200 and after.json() == before.json()
    assert disputes.status_code == 200 and disputes.json() == []
    assert "Traceback" not in cloud.process.log_path.read_text()


def test_manual_commands_beyond_the_limit_get_429_rate_limited(start_cloud: StartCloud) -> None:
    cloud = start_cloud(manual_commands_per_actor="3", manual_commands_window_s="3600")
    _, asha = create_token(cloud, "asha", "operator")
    _, imran = create_token(cloud, "imran", "operator")
    body = {"action": "disconnect", "reason": "limit test"}
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        allowed = [
            api.post("/api/v1/meters/MTR11/commands", headers=bearer(asha), json=body)
            for _ in range(3)
        ]
        limited = api.post("/api/v1/meters/MTR11/commands", headers=bearer(asha), json=body)
        other = api.post("/api/v1/meters/MTR12/commands", headers=bearer(imran), json=body)
        audit = api.get("/api/v1/audit?actor=asha", headers=bearer(asha)).json()["items"]

    assert [r.status_code for r in allowed] == [202, 202, 202]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    assert other.status_code == 202, "the limit is per operator"
    assert [e["outcome"] for e in audit] == ["rate_limited", "ok", "ok", "ok"]


def test_a_revoked_token_stops_working_at_once(start_cloud: StartCloud) -> None:
    cloud = start_cloud()
    token_id, token = create_token(cloud, "contractor", "operator")
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        before = api.get("/api/v1/gateways", headers=bearer(token))
        listed = run_cli(cloud.env, "token", "list")
        run_cli(cloud.env, "token", "revoke", token_id)
        after = api.get("/api/v1/gateways", headers=bearer(token))
        audit = api.get(
            "/api/v1/audit?action=token.revoke", headers=bearer(cloud.secrets.viewer_token)
        ).json()["items"]

    assert (before.status_code, after.status_code) == (200, 401)
    assert after.json()["code"] == "unauthorized"
    assert token not in listed and token.split("_", 2)[2] not in listed
    assert [e["target"] for e in audit] == [f"token/{token_id}"]
    assert audit[0]["actor"].startswith("cli:")


def _answer_to_partial_body(cloud: CloudProcess, head: str, sent: bytes) -> int:
    """Send a request head and only part of its body; the status the server answers with.

    The rest never comes: a server that waited to read (or parse) the body before refusing
    would never answer, and the read below fails at its deadline."""
    port = int(cloud.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + sent)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split(b" ", 2)[1])


def test_bodies_are_capped_and_nobody_unauthenticated_gets_one_read(
    start_cloud: StartCloud,
) -> None:
    cloud = start_cloud()
    path = "/api/v1/meters/MTR11/commands"
    token = f"Authorization: Bearer {cloud.secrets.operator_token}\r\n"

    def head(extra: str) -> str:
        return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n"

    big = f"Content-Length: {50 * 1024 * 1024}\r\n"
    small = "Content-Length: 60000\r\n"
    chunked = "Transfer-Encoding: chunked\r\n"
    first_chunk = b"400\r\n" + b"[" * 1024 + b"\r\n"
    answers = {
        "50 MB, no token": _answer_to_partial_body(cloud, head(big), b"[" * 1024),
        "50 MB, wrong token": _answer_to_partial_body(
            cloud, head(big + "Authorization: Bearer sy_000000000000_x\r\n"), b"[" * 1024
        ),
        "50 MB, operator": _answer_to_partial_body(cloud, head(big + token), b"[" * 1024),
        "small, no token, body never ends": _answer_to_partial_body(cloud, head(small), b"{"),
        "chunked, no token": _answer_to_partial_body(cloud, head(chunked), first_chunk),
        "chunked past the limit, operator": _answer_to_partial_body(
            cloud, head(chunked + token), first_chunk * (MAX_BODY_BYTES // 1024 + 1)
        ),
    }
    assert answers == {
        "50 MB, no token": 401,
        "50 MB, wrong token": 401,
        "50 MB, operator": 413,
        "small, no token, body never ends": 401,
        "chunked, no token": 401,
        "chunked past the limit, operator": 413,
    }
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        # The guard's answers have the API's error shape, and a normal command still works.
        refused = api.post(path, content=b"{}", headers={"Content-Type": "application/json"})
        assert refused.json()["code"] == "unauthorized"
        ok = api.post(
            path,
            json={"action": "disconnect", "reason": "after the guard"},
            headers=bearer(cloud.secrets.operator_token),
        )
        assert ok.status_code == 202, ok.text
    assert cloud.process.alive(), cloud.process.tail()
