"""EXCEPTION-Response and ConfirmedServiceError: a meter's answers that are not the service's."""

from dataclasses import dataclass

from dlms._reader import Reader
from dlms.enums import ConfirmedService, ServiceError, ServiceErrorClass, StateError
from dlms.errors import ConfirmedServiceErrorReceived, ExceptionResponseReceived

EXCEPTION_RESPONSE_TAG = 0xD8
CONFIRMED_SERVICE_ERROR_TAG = 0x0E


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """A meter could not even parse or accept the request (e.g. unknown service)."""

    state_error: StateError
    service_error: ServiceError
    # Only with INVOCATION_COUNTER_ERROR: the counter value the meter expects.
    invocation_counter: int | None = None

    def to_bytes(self) -> bytes:
        """D8, state error, service error[, invocation counter]."""
        out = bytes((EXCEPTION_RESPONSE_TAG, self.state_error, self.service_error))
        if self.invocation_counter is not None:
            out += self.invocation_counter.to_bytes(4, "big")
        return out

    def to_error(self) -> ExceptionResponseReceived:
        """The exception a client raises on receiving this."""
        return ExceptionResponseReceived(self.state_error, self.service_error)


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """A refused service, e.g. an InitiateRequest the meter cannot accept."""

    service: ConfirmedService
    error_class: ServiceErrorClass
    # Meaning depends on the class (e.g. InitiateErrorCode for INITIATE), so kept raw.
    code: int

    def to_bytes(self) -> bytes:
        """0E, service, error class, code."""
        return bytes((CONFIRMED_SERVICE_ERROR_TAG, self.service, self.error_class, self.code))

    def to_error(self) -> ConfirmedServiceErrorReceived:
        """The exception a client raises on receiving this."""
        return ConfirmedServiceErrorReceived(self.service, self.error_class, self.code)


def read_exception_response(reader: Reader) -> ExceptionResponse:
    """Decode an EXCEPTION-Response filling `reader`, tag included."""
    if reader.u8("exception-response tag") != EXCEPTION_RESPONSE_TAG:
        raise reader.fail("not an EXCEPTION-Response", reader.offset - 1)
    state_error = reader.enum(StateError, "state-error")
    service_error = reader.enum(ServiceError, "service-error")
    counter = None
    if service_error is ServiceError.INVOCATION_COUNTER_ERROR:
        counter = reader.uint(4, "invocation counter")
    reader.expect_end("EXCEPTION-Response")
    return ExceptionResponse(state_error, service_error, counter)


def read_confirmed_service_error(reader: Reader) -> ConfirmedServiceError:
    """Decode a ConfirmedServiceError filling `reader`, tag included."""
    if reader.u8("confirmed-service-error tag") != CONFIRMED_SERVICE_ERROR_TAG:
        raise reader.fail("not a ConfirmedServiceError", reader.offset - 1)
    service = reader.enum(ConfirmedService, "confirmed service")
    error_class = reader.enum(ServiceErrorClass, "service error class")
    code = reader.u8("service error code")
    reader.expect_end("ConfirmedServiceError")
    return ConfirmedServiceError(service, error_class, code)
