"""Edge gateway: verifies and executes relay commands for the meters of one DCU."""

from edge_gateway.app import Gateway, main, run_gateway
from edge_gateway.errors import (
    CommandRefused,
    GatewayError,
    MeterLinkError,
    MeterLinkRefused,
    MeterUnreachable,
    MqttError,
    PublishError,
    StoreError,
)
from edge_gateway.settings import GatewaySettings

__all__ = [
    "CommandRefused",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "MeterLinkError",
    "MeterLinkRefused",
    "MeterUnreachable",
    "MqttError",
    "PublishError",
    "StoreError",
    "main",
    "run_gateway",
]
