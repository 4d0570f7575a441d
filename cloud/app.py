"""The FastAPI application factory; the runtime lives for the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud.api.deps import TokenAuthenticator
from cloud.api.errors import install_error_handlers
from cloud.api.routes import accounts, commands, gateways, health, meters, payments, readings
from cloud.runtime import CloudRuntime
from cloud.settings import CloudSettings


def create_app(settings: CloudSettings) -> FastAPI:
    """Build the API and its runtime from settings."""
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
    app.state.authenticator = TokenAuthenticator.from_settings(settings)
    install_error_handlers(app)
    for module in (health, accounts, meters, commands, payments, gateways, readings):
        app.include_router(module.router)
    return app
