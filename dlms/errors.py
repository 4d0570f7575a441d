"""The DLMS exception tree: decode failures and the refusals a meter can answer with."""

from dlms.enums import (
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ActionResult,
    AssociationResult,
    ConfirmedService,
    DataAccessResult,
    ServiceError,
    ServiceErrorClass,
    StateError,
)


class DlmsError(Exception):
    """Base of every error this package raises on purpose."""


class DlmsDecodeError(DlmsError):
    """Bytes from the peer are not a well-formed APDU, frame or value."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class FrameError(DlmsError):
    """A TCP wrapper header was refused; the stream cannot be trusted after it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AssociationRefused(DlmsError):
    """The meter answered the AARQ with an AARE that does not accept the association."""

    def __init__(
        self,
        result: AssociationResult,
        diagnostic: AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic,
    ) -> None:
        super().__init__(f"association {result.name.lower()}: {diagnostic.name.lower()}")
        self.result = result
        self.diagnostic = diagnostic


class DataAccessRefused(DlmsError):
    """A GET or SET was answered with a Data-Access-Result other than success."""

    def __init__(self, result: DataAccessResult) -> None:
        super().__init__(f"data access refused: {result.name.lower()}")
        self.result = result


class ActionRefused(DlmsError):
    """An ACTION was answered with an Action-Result other than success."""

    def __init__(self, result: ActionResult) -> None:
        super().__init__(f"action refused: {result.name.lower()}")
        self.result = result


class ExceptionResponseReceived(DlmsError):
    """The meter answered with an EXCEPTION-Response instead of the service's response."""

    def __init__(self, state_error: StateError, service_error: ServiceError) -> None:
        super().__init__(
            f"exception response: {state_error.name.lower()}, {service_error.name.lower()}"
        )
        self.state_error = state_error
        self.service_error = service_error


class ConfirmedServiceErrorReceived(DlmsError):
    """The meter answered with a confirmedServiceError (e.g. refusing the xDLMS context)."""

    def __init__(
        self, service: ConfirmedService, error_class: ServiceErrorClass, code: int
    ) -> None:
        super().__init__(
            f"confirmed service error: {service.name.lower()}, "
            f"{error_class.name.lower()} code {code}"
        )
        self.service = service
        self.error_class = error_class
        self.code = code


class CipheringError(DlmsError):
    """A protected APDU, HLS proof or wrapped key did not verify, or uses unsupported security.

    `reason` says which check failed; it never contains key material.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayedInvocationCounter(CipheringError):
    """The peer's invocation counter is not greater than the last one accepted from it."""

    def __init__(self, received: int, last_accepted: int) -> None:
        super().__init__(
            f"invocation counter {received} not greater than last accepted {last_accepted}"
        )
        self.received = received
        self.last_accepted = last_accepted


class InvocationCounterExhausted(DlmsError):
    """Our own invocation counter reached 2**32 - 1: the key must be changed before sending."""

    def __init__(self, last_issued: int) -> None:
        super().__init__(f"invocation counter exhausted at {last_issued}; rotate the key")
        self.last_issued = last_issued
