"""Razorpay-compatible webhook: HMAC verification and strict parsing of the event body."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.ledger import MAX_PAISE
from wire.ids import ID_PATTERN

CAPTURED = "payment.captured"


class WebhookError(ValueError):
    """A webhook body that cannot be accepted, with the reason."""


def sign_body(raw_body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of the raw body, as Razorpay puts in X-Razorpay-Signature."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def signature_valid(raw_body: bytes, signature: str | None, secrets: Sequence[str]) -> bool:
    """Constant-time check of the signature against every currently valid secret."""
    if not signature:
        return False
    given = signature.strip().lower().encode()
    valid = False
    for secret in secrets:
        if secret:
            expected = sign_body(raw_body, secret).encode()
            # No early exit: the time taken does not tell which secret matched.
            valid |= hmac.compare_digest(expected, given)
    return valid


# Text that is stored: PostgreSQL cannot hold NUL in text, so such a body is malformed (400).
_NO_NUL = r"^[^\x00]+$"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class PaymentNotes(_Lenient):
    """Notes the checkout attached; `account_id` names the consumer account."""

    account_id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None


class PaymentEntity(_Lenient):
    """The payment inside a payment.* event."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_NUL)]
    amount: Annotated[int, Field(gt=0, le=MAX_PAISE, strict=True)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    status: str
    notes: PaymentNotes | list[Any] = Field(default_factory=PaymentNotes)

    @property
    def account_ref(self) -> str | None:
        """The account the payer named, if any."""
        return self.notes.account_id if isinstance(self.notes, PaymentNotes) else None


class _PaymentWrapper(_Lenient):
    entity: PaymentEntity


class _Payload(_Lenient):
    payment: _PaymentWrapper


class WebhookEnvelope(_Lenient):
    """The outer event: entity, event type, creation time."""

    entity: str
    event: Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_NUL)]
    created_at: int | None = None


class CapturedPayment(_Lenient):
    """A payment.captured event with its payment."""

    entity: str
    event: str
    created_at: int | None = None
    payload: _Payload

    @property
    def payment(self) -> PaymentEntity:
        """The captured payment."""
        return self.payload.payment.entity


# Razorpay's documents are a few levels deep; far deeper is an attack on the parser's stack.
MAX_NESTING = 32


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Last key wins in Python, first key in other parsers: a money document must be unambiguous.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise WebhookError(f"key {key!r} appears more than once")
        document[key] = value
    return document


def _nesting_depth(raw_body: bytes) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings are not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw_body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def parse_document(raw_body: bytes) -> Any:
    """Parse a money document strictly: JSON, at most MAX_NESTING deep, no repeated key."""
    if _nesting_depth(raw_body) > MAX_NESTING:
        raise WebhookError(f"body is nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(raw_body, object_pairs_hook=_refuse_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(f"body is not JSON: {exc}") from exc


def parse_envelope(raw_body: bytes) -> tuple[WebhookEnvelope, Any]:
    """Parse the body as JSON and read its envelope; raise WebhookError if malformed."""
    document = parse_document(raw_body)
    if not isinstance(document, dict):
        raise WebhookError("body is not a JSON object")
    try:
        envelope = WebhookEnvelope.model_validate(document)
    except ValidationError as exc:
        raise WebhookError(_first_error(exc)) from exc
    if envelope.entity != "event":
        raise WebhookError("entity is not 'event'")
    return envelope, document


def parse_captured(document: Any) -> CapturedPayment:
    """Read a payment.captured event strictly; raise WebhookError if it is malformed."""
    try:
        captured = CapturedPayment.model_validate(document)
    except ValidationError as exc:
        raise WebhookError(_first_error(exc)) from exc
    if captured.payment.status != "captured":
        raise WebhookError(f"payment status is {captured.payment.status!r}, not 'captured'")
    return captured


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"
