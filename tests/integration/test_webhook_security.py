"""The payment webhook refuses every body it cannot trust and records nothing of it: wrong
signature, the signature of another body, a truncated, oversized, chunked or lying body — and
accepts the previous secret only during its rotation window. Real HTTP, down to raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cloud.api.routes.payments import MAX_BODY_BYTES
from cloud.db.models import LedgerEntry, Payment, WebhookEvent
from cloud.db.session import Database
from cloud.payments.webhook import sign_body
from switchyard.broker import Broker
from switchyard.broker_credentials import BrokerCredentials
from switchyard.pay import webhook_body
from tests.support.secure_cloud import CloudProcess, start_cloud_process

pytestmark = pytest.mark.integration

WEBHOOK = "/api/v1/payments/webhook"
PREVIOUS_SECRET = "previous-webhook-secret-" + "x" * 16


@pytest.fixture
def cloud(
    secure_broker: Broker,
    broker_credentials: BrokerCredentials,
    database_url: str,
    tmp_path: Path,
) -> Iterator[CloudProcess]:
    until = datetime.now(UTC) + timedelta(days=1)
    running = start_cloud_process(
        secure_broker,
        broker_credentials,
        database_url,
        tmp_path,
        webhook_secret_previous=PREVIOUS_SECRET,
        webhook_secret_previous_until=until.isoformat(),
    )
    yield running
    running.stop()


def recorded(database_url: str) -> dict[str, int]:
    """How many webhook events, payments and ledger entries the database holds."""

    async def count() -> dict[str, int]:
        db = Database.from_url(database_url)
        try:
            async with db.read() as session:
                return {
                    model.__tablename__: (
                        await session.execute(select(func.count()).select_from(model))
                    ).scalar_one()
                    for model in (WebhookEvent, Payment, LedgerEntry)
                }
        finally:
            await db.close()

    return asyncio.run(count())


def raw_exchange(cloud: CloudProcess, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request exactly as given over a fresh TCP connection; what the server answers."""
    port = int(cloud.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: fine, we read its answer
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # the server may have answered and closed already
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def head(cloud: CloudProcess, signature: str, extra: str) -> bytes:
    return (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Razorpay-Signature: {signature}\r\nX-Razorpay-Event-Id: evt_{secrets.token_hex(6)}\r\n"
        f"{extra}\r\n"
    ).encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def chunked(data: bytes, size: int = 8192) -> list[bytes]:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


def test_untrusted_bodies_are_refused_and_nothing_is_recorded(cloud: CloudProcess) -> None:
    secret = cloud.secrets.webhook_secret
    body = webhook_body("ACC11", 50_000, "pay_attack_1")
    other = webhook_body("ACC11", 9_999_999, "pay_attack_2")
    oversized = body + b" " * MAX_BODY_BYTES  # valid JSON, signed, but too big
    before = recorded(cloud.database_url)
    answers: dict[str, int] = {}
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:

        def post(content: bytes, signature: str) -> int:
            headers = {
                "Content-Type": "application/json",
                "X-Razorpay-Signature": signature,
                "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(6)}",
            }
            return api.post(WEBHOOK, content=content, headers=headers).status_code

        answers["no signature"] = api.post(WEBHOOK, content=body).status_code
        answers["wrong secret"] = post(body, sign_body(body, "not-the-secret"))
        answers["signature of a different body"] = post(body, sign_body(other, secret))
        answers["truncated body"] = post(body[: len(body) // 2], sign_body(body, secret))
        answers["oversized, signed"] = post(oversized, sign_body(oversized, secret))
        # Signed by the gateway but not storable: refused as malformed, not a 500 retried forever.
        huge = webhook_body("ACC11", 102_907_645_373_826_744_320, "pay_attack_3")
        answers["amount beyond 64 bits, signed"] = post(huge, sign_body(huge, secret))
        nul = webhook_body("ACC11", 50_000, "pay_\x00attack")
        answers["NUL in the payment id, signed"] = post(nul, sign_body(nul, secret))

    signature = sign_body(oversized, secret)
    answers["chunked, no length, oversized"] = status_of(
        raw_exchange(
            cloud, head(cloud, signature, "Transfer-Encoding: chunked\r\n"), chunked(oversized)
        )
    )
    answers["length says small, chunked body oversized"] = status_of(
        raw_exchange(
            cloud,
            head(cloud, signature, "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n"),
            chunked(oversized),
        )
    )
    # Fewer bytes than declared: only a prefix of the signed body is read.
    short = body[:100]
    answers["length says small, body longer"] = status_of(
        raw_exchange(cloud, head(cloud, sign_body(body, secret), "Content-Length: 100\r\n"), [body])
    )
    answers["length says small, prefix signed"] = status_of(
        raw_exchange(
            cloud, head(cloud, sign_body(short, secret), "Content-Length: 100\r\n"), [body]
        )
    )
    # The sender hangs up after half the declared body.
    answers["hang-up mid-body"] = status_of(
        raw_exchange(
            cloud,
            head(cloud, sign_body(body, secret), f"Content-Length: {len(body)}\r\n"),
            [body[: len(body) // 2]],
        )
    )

    assert answers == {
        "no signature": 401,
        "wrong secret": 401,
        "signature of a different body": 401,
        "truncated body": 401,
        "oversized, signed": 413,
        "amount beyond 64 bits, signed": 400,
        "NUL in the payment id, signed": 400,
        "chunked, no length, oversized": 413,
        "length says small, chunked body oversized": answers[
            "length says small, chunked body oversized"
        ],
        "length says small, body longer": answers["length says small, body longer"],
        "length says small, prefix signed": 400,  # a signed prefix is not JSON
        "hang-up mid-body": answers["hang-up mid-body"],
    }
    # Both headers at once is refused before our code runs (h11: 400), or read as chunked (413).
    assert answers["length says small, chunked body oversized"] in (400, 413)
    # The declared 100 bytes are a prefix the signature does not cover (h11: 401); httptools also
    # parses the bytes after them as a next request and may answer that 400 first. Never 2xx.
    assert answers["length says small, body longer"] in (400, 401)
    # The server may answer 400 to a body cut short, or just close: never 2xx.
    assert answers["hang-up mid-body"] in (0, 400)
    assert recorded(cloud.database_url) == before
    assert cloud.process.alive(), cloud.process.tail()
    assert "Traceback" not in cloud.process.log_path.read_text()


def test_previous_secret_is_accepted_during_its_rotation_window(cloud: CloudProcess) -> None:
    before = recorded(cloud.database_url)
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        statuses = []
        for secret, payment_id in (
            (cloud.secrets.webhook_secret, "pay_current_1"),
            (PREVIOUS_SECRET, "pay_previous_1"),
        ):
            body = webhook_body("ACC11", 10_000, payment_id)
            response = api.post(
                WEBHOOK,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Razorpay-Signature": sign_body(body, secret),
                    "X-Razorpay-Event-Id": f"evt_{payment_id}",
                },
            )
            statuses.append((response.status_code, response.json()["status"]))

    assert statuses == [(200, "processed"), (200, "processed")]
    after = recorded(cloud.database_url)
    assert after["payments"] == before["payments"] + 2
    assert after["webhook_events"] == before["webhook_events"] + 2


def signed_post(api: httpx.Client, cloud: CloudProcess, body: bytes) -> httpx.Response:
    """POST a body signed with the current secret, under a fresh event id."""
    return api.post(
        WEBHOOK,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign_body(body, cloud.secrets.webhook_secret),
            "X-Razorpay-Event-Id": f"evt_{secrets.token_hex(6)}",
        },
    )


def test_ambiguous_or_deeply_nested_money_documents_are_refused(cloud: CloudProcess) -> None:
    genuine = webhook_body("ACC11", 1_000, "pay_ambiguous_1")
    # Python's json keeps the last "amount", other parsers the first: refuse the document.
    twice = genuine.replace(b'"amount":1000', b'"amount":1000,"amount":99999999')
    assert twice.count(b'"amount"') == 2
    nested = b'{"entity":"event","event":"payment.captured","x":' + b"[" * 20_000
    nested += b"]" * 20_000 + b"}"
    before = recorded(cloud.database_url)
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        answers = {
            "duplicate amount": signed_post(api, cloud, twice),
            "20,000 deep": signed_post(api, cloud, nested),
        }
    assert {case: r.status_code for case, r in answers.items()} == {
        "duplicate amount": 400,
        "20,000 deep": 400,
    }
    assert "appears more than once" in answers["duplicate amount"].json()["message"]
    assert recorded(cloud.database_url) == before
    assert "Traceback" not in cloud.process.log_path.read_text()


def test_a_known_payment_id_with_another_amount_is_kept_as_a_conflict(
    cloud: CloudProcess,
) -> None:
    viewer = {"Authorization": f"Bearer {cloud.secrets.viewer_token}"}
    with httpx.Client(base_url=cloud.url, timeout=10.0) as api:
        first = signed_post(api, cloud, webhook_body("ACC11", 1_000, "pay_conflict_1"))
        same_again = signed_post(api, cloud, webhook_body("ACC11", 1_000, "pay_conflict_1"))
        more = signed_post(api, cloud, webhook_body("ACC11", 99_999_999, "pay_conflict_1"))
        elsewhere = signed_post(api, cloud, webhook_body("ACC12", 1_000, "pay_conflict_1"))
        conflicts = api.get("/api/v1/payments/conflicts", headers=viewer).json()["items"]
        unauthenticated = api.get("/api/v1/payments/conflicts").status_code
        metrics = api.get("/metrics").text

    assert [r.json()["status"] for r in (first, same_again, more, elsewhere)] == [
        "processed",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    # The recorded payment stands; each disagreeing re-delivery is kept, the identical one not.
    fields = (
        "payment_id",
        "recorded_amount_paise",
        "claimed_amount_paise",
        "recorded_account_ref",
        "claimed_account_ref",
    )
    assert [tuple(c[f] for f in fields) for c in conflicts] == [
        ("pay_conflict_1", 1_000, 1_000, "ACC11", "ACC12"),
        ("pay_conflict_1", 1_000, 99_999_999, "ACC11", "ACC11"),
    ]
    assert unauthenticated == 401
    assert "switchyard_payment_conflicts_total 2.0" in metrics
    counts = recorded(cloud.database_url)
    assert counts["payments"] == 1
    assert counts["webhook_events"] == 4
    assert "delivered again with 99999999 paise" in cloud.process.log_path.read_text()
