"""Mount the screens on the app: routers, static files, security headers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cloud.web import checkout, console, consumer
from cloud.web.providers import WebSettings
from cloud.web.security import SecurityHeaders, content_security_policy
from cloud.web.state import HERE, build_web_state

RAZORPAY_SCRIPT = "https://checkout.razorpay.com"
RAZORPAY_FRAME = "https://api.razorpay.com"


def install_screens(app: FastAPI, *, dev_mode: bool, settings: WebSettings | None = None) -> None:
    """Serve the consumer page (and its checkouts) and the operator console from this app."""
    web = settings or WebSettings()
    app.state.web = build_web_state(web, dev_mode=dev_mode)
    # Only Razorpay's own Checkout may load beside the app's scripts, and only when it is used.
    csp = (
        content_security_policy(RAZORPAY_SCRIPT, RAZORPAY_FRAME)
        if web.payment_provider == "razorpay"
        else content_security_policy()
    )
    app.add_middleware(SecurityHeaders, csp=csp)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(consumer.router)
    app.include_router(checkout.router)
    app.include_router(console.router)
    app.add_exception_handler(console.SignInRequired, console.sign_in_redirect)
