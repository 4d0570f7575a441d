"""`switchyard cloud`: run the cloud service alone, configured by SWITCHYARD_* environment."""

from __future__ import annotations

import logging
import secrets

import uvicorn
from pydantic import SecretStr, ValidationError

from cloud.app import create_app
from cloud.settings import CloudSettings
from wire.signing import generate_private_key_b64, private_key_from_b64, public_key_b64

log = logging.getLogger("cloud")


def fill_dev_secrets(settings: CloudSettings) -> CloudSettings:
    """In development mode, generate (and log) any secret left empty."""
    if not settings.dev_mode:
        return settings
    updates: dict[str, SecretStr] = {}
    if not settings.signing_private_key.get_secret_value():
        updates["signing_private_key"] = SecretStr(generate_private_key_b64())
    for name in ("webhook_secret", "operator_token", "viewer_token"):
        if not getattr(settings, name).get_secret_value():
            updates[name] = SecretStr(secrets.token_urlsafe(24))
            log.warning("dev mode: generated %s=%s", name, updates[name].get_secret_value())
    filled = settings.model_copy(update=updates)
    public = public_key_b64(private_key_from_b64(filled.signing_private_key.get_secret_value()))
    log.warning("dev mode: command signing key %s, public key %s", filled.signing_key_id, public)
    return filled


def configure_logging(level: str = "INFO") -> None:
    """One log format for every Switchyard process."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point of `switchyard cloud`."""
    configure_logging()
    try:
        settings = fill_dev_secrets(CloudSettings())
    except ValidationError as exc:
        raise SystemExit(f"switchyard cloud: bad configuration:\n{exc}") from exc
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
