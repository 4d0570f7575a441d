"""The MQTT topic tree: builders, subscription filters and a strict parser."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wire.errors import TopicError
from wire.ids import is_valid_id

ROOT = "sy/v1"
CLOUD_SHARE_GROUP = "cloud"


class TopicKind(StrEnum):
    """The five kinds of topic in the tree."""

    CMD = "cmd"
    ACK = "ack"
    EVENT = "event"
    TELEMETRY = "telemetry"
    STATE = "state"


_METER_KINDS = {TopicKind.CMD, TopicKind.ACK, TopicKind.EVENT}


def _checked(value: str, what: str) -> str:
    if not is_valid_id(value):
        raise TopicError(value, f"invalid {what} id")
    return value


def meter_topic(kind: TopicKind, dcu_id: str, meter_id: str) -> str:
    """Topic of one meter's command, ack or event stream."""
    if kind not in _METER_KINDS:
        raise TopicError(kind.value, "not a per-meter topic kind")
    return f"{ROOT}/dcu/{_checked(dcu_id, 'dcu')}/meter/{_checked(meter_id, 'meter')}/{kind.value}"


def command_topic(dcu_id: str, meter_id: str) -> str:
    """Topic a signed command for one meter is published on."""
    return meter_topic(TopicKind.CMD, dcu_id, meter_id)


def ack_topic(dcu_id: str, meter_id: str) -> str:
    """Topic the gateway acknowledges one meter's commands on."""
    return meter_topic(TopicKind.ACK, dcu_id, meter_id)


def event_topic(dcu_id: str, meter_id: str) -> str:
    """Topic one meter's events are published on."""
    return meter_topic(TopicKind.EVENT, dcu_id, meter_id)


def telemetry_topic(dcu_id: str) -> str:
    """Topic a DCU publishes its reading batches on."""
    return f"{ROOT}/dcu/{_checked(dcu_id, 'dcu')}/telemetry"


def state_topic(dcu_id: str) -> str:
    """Retained presence topic of one DCU (birth and Will)."""
    return f"{ROOT}/dcu/{_checked(dcu_id, 'dcu')}/state"


def gateway_command_filter(dcu_id: str) -> str:
    """Filter a gateway subscribes to for every command of its own meters."""
    return f"{ROOT}/dcu/{_checked(dcu_id, 'dcu')}/meter/+/cmd"


def cloud_filter(kind: TopicKind) -> str:
    """Filter matching one kind of topic across every DCU."""
    if kind in _METER_KINDS:
        return f"{ROOT}/dcu/+/meter/+/{kind.value}"
    return f"{ROOT}/dcu/+/{kind.value}"


def shared(topic_filter: str, group: str = CLOUD_SHARE_GROUP) -> str:
    """Wrap a filter in an MQTT 5 shared subscription so cloud processes split the load."""
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """What a topic names: its kind, its DCU and, for per-meter kinds, its meter."""

    kind: TopicKind
    dcu_id: str
    meter_id: str | None = None


def parse(topic: str) -> ParsedTopic:
    """Parse a concrete topic of the tree; raise TopicError for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "sy" or parts[1] != "v1" or parts[2] != "dcu":
        raise TopicError(topic, f"not under {ROOT}/dcu/")
    dcu_id = parts[3]
    if not is_valid_id(dcu_id):
        raise TopicError(topic, "invalid dcu id")
    if len(parts) == 5 and parts[4] in (TopicKind.TELEMETRY, TopicKind.STATE):
        return ParsedTopic(TopicKind(parts[4]), dcu_id)
    if len(parts) == 7 and parts[4] == "meter" and parts[6] in _METER_KINDS:
        meter_id = parts[5]
        if not is_valid_id(meter_id):
            raise TopicError(topic, "invalid meter id")
        return ParsedTopic(TopicKind(parts[6]), dcu_id, meter_id)
    raise TopicError(topic, "unknown topic shape")
