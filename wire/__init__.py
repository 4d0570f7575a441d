"""The contract cloud and edge share: topics, message models, command signatures."""

from wire.errors import (
    BadSignature,
    MalformedMessage,
    SignatureError,
    TopicError,
    UnknownKey,
    WireError,
)
from wire.ids import new_command_id
from wire.messages import (
    Ack,
    AckStatus,
    Action,
    Command,
    EventCode,
    GatewayState,
    LoadProfileBlock,
    MeterEvent,
    MeterReport,
    Reading,
    RelayState,
    TelemetryBatch,
    decode,
    encode,
)
from wire.signing import CommandSigner, KeyRing, canonical_bytes
from wire.topics import ParsedTopic, TopicKind

__all__ = [
    "Ack",
    "AckStatus",
    "Action",
    "BadSignature",
    "Command",
    "CommandSigner",
    "EventCode",
    "GatewayState",
    "KeyRing",
    "LoadProfileBlock",
    "MalformedMessage",
    "MeterEvent",
    "MeterReport",
    "ParsedTopic",
    "Reading",
    "RelayState",
    "SignatureError",
    "TelemetryBatch",
    "TopicError",
    "TopicKind",
    "UnknownKey",
    "WireError",
    "canonical_bytes",
    "decode",
    "encode",
    "new_command_id",
]
