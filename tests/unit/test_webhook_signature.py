"""Webhook verification and parsing: signatures, rotation, malformed bodies."""

from __future__ import annotations

import json

import pytest

from cloud.payments.webhook import (
    WebhookError,
    parse_captured,
    parse_envelope,
    sign_body,
    signature_valid,
)
from switchyard.pay import webhook_body

BODY = webhook_body("ACC000123", 123_400, "pay_29QQoUBi66xm2f")


def test_signature_of_the_raw_body_verifies() -> None:
    assert signature_valid(BODY, sign_body(BODY, "s3cret"), ["s3cret"])


def test_any_secret_of_a_rotation_verifies() -> None:
    assert signature_valid(BODY, sign_body(BODY, "old"), ["new", "old"])
    assert not signature_valid(BODY, sign_body(BODY, "older"), ["new", "old"])


@pytest.mark.parametrize(
    "signature", [None, "", "00", sign_body(BODY + b" ", "s3cret"), sign_body(BODY, "other")]
)
def test_wrong_or_missing_signatures_fail(signature: str | None) -> None:
    assert not signature_valid(BODY, signature, ["s3cret"])


def test_empty_secret_never_verifies() -> None:
    assert not signature_valid(BODY, sign_body(BODY, ""), [""])


def test_captured_payment_is_read() -> None:
    envelope, document = parse_envelope(BODY)
    payment = parse_captured(document).payment
    assert envelope.event == "payment.captured"
    assert (payment.id, payment.amount, payment.account_ref) == (
        "pay_29QQoUBi66xm2f",
        123_400,
        "ACC000123",
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["payload"]["payment"]["entity"].update(amount="1234"),
        lambda d: d["payload"]["payment"]["entity"].update(amount=12.5),
        lambda d: d["payload"]["payment"]["entity"].update(amount=-5),
        lambda d: d["payload"]["payment"]["entity"].pop("id"),
        lambda d: d["payload"].pop("payment"),
        lambda d: d["payload"]["payment"]["entity"].update(status="failed"),
        lambda d: d["payload"]["payment"]["entity"].update(id="pay_\x00x"),
    ],
)
def test_malformed_captured_payments_are_refused(mutate: object) -> None:
    document = json.loads(BODY)
    mutate(document)  # type: ignore[operator]
    with pytest.raises(WebhookError):
        parse_captured(document)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"{",
        b'{"entity": "event"}',
        b"\xff\xfe",
        b'{"entity": "event", "event": "payment.\\u0000captured"}',
    ],
)
def test_malformed_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(WebhookError):
        parse_envelope(raw)
