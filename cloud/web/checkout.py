"""Where the consumer comes back from the payment provider: the development test checkout
(which plays the gateway) and Razorpay Checkout's signed callback."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from cloud.api.deps import RuntimeDep
from cloud.web.consumer import track_redirect
from cloud.web.messages import pick_lang
from cloud.web.providers import CallbackIn
from cloud.web.state import render, web_state
from switchyard.pay import pay
from wire.ids import ID_PATTERN

router = APIRouter(include_in_schema=False)


@router.post("/checkout/dev", response_class=HTMLResponse)
async def dev_checkout(
    request: Request,
    runtime: RuntimeDep,
    account: Annotated[str, Form(pattern=ID_PATTERN)],
    amount_paise: Annotated[int, Form(ge=100)],
    lang: Annotated[str, Form(max_length=2)] = "en",
) -> Response:
    """Development only: send the signed payment.captured webhook exactly as `switchyard pay`."""
    state = web_state(request)
    if not state.dev_mode or state.provider.name != "dev":
        return Response(status_code=404)
    settings = runtime.settings
    # Over real HTTP to this process's own webhook, as the gateway (and `switchyard pay`) would.
    receipt = await asyncio.to_thread(
        pay,
        f"http://{settings.http_host}:{settings.http_port}",
        settings.webhook_secret.get_secret_value(),
        account,
        amount_paise,
        wait_s=0,
    )
    return track_redirect(receipt.payment_id, pick_lang(lang))


@router.post("/checkout/razorpay/callback", response_class=HTMLResponse)
async def razorpay_callback(
    request: Request,
    razorpay_order_id: Annotated[str, Form(max_length=64)],
    razorpay_payment_id: Annotated[str, Form(max_length=64)],
    razorpay_signature: Annotated[str, Form(max_length=128)],
    lang: Annotated[str, Form(max_length=2)] = "en",
) -> Response:
    """Checkout's return: a valid signature only leads to the timeline; credit is the webhook's."""
    chosen = pick_lang(lang)
    try:
        callback = CallbackIn(
            razorpay_order_id=razorpay_order_id,
            razorpay_payment_id=razorpay_payment_id,
            razorpay_signature=razorpay_signature,
        )
    except ValidationError:
        return render(request, "consumer.html", chosen, 400, error="callback_invalid")
    if not web_state(request).provider.callback_valid(callback):
        return render(request, "consumer.html", chosen, 400, error="callback_invalid")
    return track_redirect(callback.razorpay_payment_id, chosen)
