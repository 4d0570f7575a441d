"""The consumer page at `/`: dues in Hindi or English, pay, then a live timeline to power."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from cloud.api.deps import RuntimeDep
from cloud.api.routes.accounts import get_dues
from cloud.errors import NotFound
from cloud.web.messages import Lang, pick_lang
from cloud.web.providers import PaymentProviderError
from cloud.web.state import client_key, render, web_state
from cloud.web.timeline import load_timeline, timeline_view
from wire.ids import ID_PATTERN

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

PAYMENT_ID_PATTERN = r"^pay_[A-Za-z0-9]{6,40}$"
_ACCOUNT_RE = re.compile(ID_PATTERN)
# The server watches the database for the page; the page itself never polls.
WATCH_INTERVAL_S = 0.05
STREAM_MAX_S = 300.0
HEARTBEAT_S = 15.0
LangQuery = Annotated[str | None, Query(max_length=2)]


@router.get("/", response_class=HTMLResponse)
async def consumerrender(
    request: Request,
    runtime: RuntimeDep,
    lang: LangQuery = None,
    account: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The lookup form, and the account's dues when one was asked for (no JavaScript needed)."""
    chosen = pick_lang(lang)
    if not account:
        return render(request, "consumer.html", chosen)
    account = account.strip()
    if not _ACCOUNT_RE.match(account):
        return render(request, "consumer.html", chosen, 422, error="invalid_account")
    if not web_state(request).lookups.allow(client_key(request)):
        return render(request, "consumer.html", chosen, 429, error="rate_limited", account=account)
    try:
        dues = await get_dues(account, runtime)
    except NotFound:
        return render(request, "consumer.html", chosen, 404, error="not_found", account=account)
    return render(request, "consumer.html", chosen, account=account, dues=dues)


def _paise(rupees: str) -> int | None:
    try:
        value = Decimal(rupees.strip().replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)


@router.post("/pay", response_class=HTMLResponse)
async def start_payment(
    request: Request,
    runtime: RuntimeDep,
    account: Annotated[str, Form(pattern=ID_PATTERN)],
    amount: Annotated[str, Form(max_length=20)],
    lang: Annotated[str, Form(max_length=2)] = "en",
) -> Response:
    """Hand the consumer to the payment provider for an amount up to the total payable."""
    chosen = pick_lang(lang)
    try:
        dues = await get_dues(account, runtime)
    except NotFound:
        return render(request, "consumer.html", chosen, 404, error="not_found", account=account)
    paise = _paise(amount)
    if paise is None or not 100 <= paise <= dues.total_payable_paise:
        return render(
            request,
            "consumer.html",
            chosen,
            422,
            error="invalid_amount",
            account=account,
            dues=dues,
        )
    try:
        checkout = await web_state(request).provider.start(account, paise)
    except PaymentProviderError as exc:
        log.warning("payment provider: %s", exc)
        return render(request, "consumer.html", chosen, 502, error="provider_unavailable")
    template = f"checkout_{checkout.provider}.html"
    return render(request, template, chosen, checkout=checkout, account=account)


@router.get("/track/{payment_id}", response_class=HTMLResponse)
async def trackrender(
    request: Request, runtime: RuntimeDep, payment_id: str, lang: LangQuery = None
) -> Response:
    """The payment's timeline as it stands; the page's script then follows the event stream."""
    chosen = pick_lang(lang)
    if not re.match(PAYMENT_ID_PATTERN, payment_id):
        return render(request, "consumer.html", chosen, 404, error="payment_unknown")
    view = timeline_view(await load_timeline(runtime.db, payment_id), chosen)
    return render(request, "track.html", chosen, timeline=view, payment_id=payment_id)


@router.get("/track/{payment_id}/events")
async def track_events(
    request: Request, runtime: RuntimeDep, payment_id: str, lang: LangQuery = None
) -> Response:
    """Server-Sent Events: the timeline each time it changes, until it is finished."""
    if not re.match(PAYMENT_ID_PATTERN, payment_id):
        return Response(status_code=404)
    chosen = pick_lang(lang)

    async def events() -> AsyncIterator[str]:
        last, started, beat = "", time.monotonic(), time.monotonic()
        while time.monotonic() - started < STREAM_MAX_S:
            timeline = await load_timeline(runtime.db, payment_id)
            if timeline is not None:
                view = timeline_view(timeline, chosen)
                data = json.dumps(view, ensure_ascii=False)
                if data != last:
                    last, beat = data, time.monotonic()
                    yield f"event: timeline\ndata: {data}\n\n"
                if timeline.finished:
                    return
            if time.monotonic() - beat > HEARTBEAT_S:
                beat = time.monotonic()
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(WATCH_INTERVAL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def track_redirect(payment_id: str, lang: Lang) -> RedirectResponse:
    """After a payment, to its timeline."""
    return RedirectResponse(f"/track/{payment_id}?lang={lang}", status_code=303)
