"""The cloud's exception tree; API errors carry a stable code and an HTTP status."""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error the cloud raises on purpose."""


class BrokerUnavailable(CloudError):
    """The MQTT broker cannot be reached right now."""


class ApiError(CloudError):
    """An error answered to an API client as JSON `{code, message}`."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unauthorized(ApiError):
    """No credentials, or credentials we do not recognise."""

    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """Credentials recognised, role not allowed."""

    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    """The named resource does not exist."""

    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    """The request contradicts the current state."""

    status_code = 409
    code = "conflict"


class Unprocessable(ApiError):
    """Well-formed but semantically invalid input."""

    status_code = 422
    code = "validation_error"


class PayloadTooLarge(ApiError):
    """The request body is larger than this endpoint accepts."""

    status_code = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    """Too many requests of this kind; try again after `retry_after_s`."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
