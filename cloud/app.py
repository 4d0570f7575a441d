"""The FastAPI application factory; the runtime lives for the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud.access.tokens import Role, TokenAuthenticator
from cloud.api.errors import install_error_handlers
from cloud.api.guard import RequestGuard
from cloud.api.routes import (
    accounts,
    audit,
    billing,
    commands,
    disconnection_runs,
    gateways,
    health,
    meters,
    notifications,
    payments,
    policy,
    readings,
    safeguards,
)
from cloud.runtime import CloudRuntime
from cloud.settings import CloudSettings
from cloud.web.install import install_screens
from cloud.web.providers import WebSettings


def create_app(settings: CloudSettings, web: WebSettings | None = None) -> FastAPI:
    """Build the API, the screens and the runtime from settings."""
    runtime = CloudRuntime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running():
            yield

    app = FastAPI(
        title="Switchyard",
        version="0.1.0",
        summary="Remote switching of smart meters: payment to power in seconds.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.authenticator = TokenAuthenticator(
        runtime.db,
        {
            Role.OPERATOR: settings.operator_token.get_secret_value(),
            Role.VIEWER: settings.viewer_token.get_secret_value(),
        },
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuard)
    for module in (health, accounts, meters, commands, payments, gateways, audit, readings):
        app.include_router(module.router)
    for module in (billing, safeguards, notifications, policy, disconnection_runs):
        app.include_router(module.router)
    install_screens(app, dev_mode=settings.dev_mode, settings=web)
    return app
