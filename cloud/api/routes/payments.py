"""The payment gateway's webhook (Razorpay-compatible)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import select
from starlette.requests import ClientDisconnect

from cloud.api.deps import RuntimeDep, ViewerDep
from cloud.api.errors import error_responses
from cloud.api.guard import MAX_BODY_BYTES
from cloud.api.pagination import LimitQuery
from cloud.api.schemas import Page, PaymentConflictOut, WebhookOut
from cloud.clock import utcnow
from cloud.db.models import PaymentConflict
from cloud.errors import ApiError, PayloadTooLarge, Unauthorized
from cloud.payments.webhook import WebhookError, parse_envelope, signature_valid

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])
log = logging.getLogger(__name__)


@router.post(
    "/webhook",
    response_model=WebhookOut,
    responses=error_responses(400, 401, 413, 422),
    # The body is read raw (the signature covers its exact bytes), so it is declared here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def payment_webhook(
    request: Request,
    runtime: RuntimeDep,
    x_razorpay_signature: Annotated[str | None, Header()] = None,
    x_razorpay_event_id: Annotated[str | None, Header(max_length=128)] = None,
) -> WebhookOut:
    """Record a captured payment durably, then answer; reconnection proceeds on its own."""
    received_at = utcnow()
    raw_body = await _read_limited(request)
    # During a rotation the previous secret is valid too, until its window ends.
    secrets = runtime.settings.webhook_secrets(received_at)
    if not signature_valid(raw_body, x_razorpay_signature, secrets):
        runtime.metrics.webhooks.labels("bad_signature").inc()
        raise Unauthorized("webhook signature does not match")
    try:
        envelope, document = parse_envelope(raw_body)
        if not x_razorpay_event_id:
            raise WebhookError("X-Razorpay-Event-Id header is missing")
        result = await runtime.payments.record(
            x_razorpay_event_id, envelope, document, raw_body, received_at
        )
    except WebhookError as exc:
        runtime.metrics.webhooks.labels("malformed").inc()
        raise ApiError(f"malformed webhook: {exc}", code="malformed_webhook") from exc
    runtime.metrics.webhooks.labels(result.outcome.value).inc()
    if result.conflict:
        runtime.metrics.payment_conflicts.inc()
    return WebhookOut(
        status=result.outcome.value,
        payment_id=result.payment_id,
        command_id=result.command_id,
    )


@router.get(
    "/conflicts",
    response_model=Page[PaymentConflictOut],
    responses=error_responses(401, 422),
)
async def list_payment_conflicts(
    runtime: RuntimeDep,
    _: ViewerDep,
    payment_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: LimitQuery = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="from `next_cursor`")
    ] = None,
) -> Page[PaymentConflictOut]:
    """Re-deliveries of known payment ids that disagreed with the recorded payment, newest
    first: the recorded payment stands, these wait for reconciliation."""
    query = select(PaymentConflict)
    if payment_id is not None:
        query = query.where(PaymentConflict.payment_id == payment_id)
    if cursor is not None:
        query = query.where(PaymentConflict.conflict_id < int(cursor))
    query = query.order_by(PaymentConflict.conflict_id.desc()).limit(limit)
    async with runtime.db.read() as session:
        rows = (await session.execute(query)).scalars()
        items = [PaymentConflictOut.model_validate(row) for row in rows]
    next_cursor = str(items[-1].conflict_id) if len(items) == limit else None
    return Page[PaymentConflictOut](items=items, next_cursor=next_cursor)


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    except ClientDisconnect as exc:
        # The sender hung up mid-body: nothing was read that could be recorded.
        raise ApiError("request body incomplete", code="incomplete_body") from exc
    return bytes(body)
