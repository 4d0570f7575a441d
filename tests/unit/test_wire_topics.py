"""The topic tree: builders and the strict parser agree, and foreign topics are refused."""

from __future__ import annotations

import pytest

from wire import TopicError
from wire.topics import (
    TopicKind,
    ack_topic,
    cloud_filter,
    command_topic,
    gateway_command_filter,
    parse,
    shared,
    state_topic,
    telemetry_topic,
)


def test_builders_match_the_design_contract() -> None:
    assert command_topic("DCU01", "MTR000001") == "sy/v1/dcu/DCU01/meter/MTR000001/cmd"
    assert ack_topic("DCU01", "MTR000001") == "sy/v1/dcu/DCU01/meter/MTR000001/ack"
    assert telemetry_topic("DCU01") == "sy/v1/dcu/DCU01/telemetry"
    assert state_topic("DCU01") == "sy/v1/dcu/DCU01/state"
    assert gateway_command_filter("DCU01") == "sy/v1/dcu/DCU01/meter/+/cmd"
    assert shared(cloud_filter(TopicKind.ACK)) == "$share/cloud/sy/v1/dcu/+/meter/+/ack"


@pytest.mark.parametrize("kind", [TopicKind.CMD, TopicKind.ACK, TopicKind.EVENT])
def test_parse_round_trips_per_meter_topics(kind: TopicKind) -> None:
    topic = f"sy/v1/dcu/D-7/meter/M.9/{kind.value}"
    parsed = parse(topic)
    assert (parsed.kind, parsed.dcu_id, parsed.meter_id) == (kind, "D-7", "M.9")


def test_parse_dcu_topics_have_no_meter() -> None:
    assert parse("sy/v1/dcu/DCU02/state").meter_id is None
    assert parse("sy/v1/dcu/DCU02/telemetry").kind is TopicKind.TELEMETRY


@pytest.mark.parametrize(
    "topic",
    [
        "sy/v2/dcu/DCU01/state",
        "sy/v1/dcu/DCU01/meter/M1/reboot",
        "sy/v1/dcu/DCU01/meter/M1",
        "sy/v1/dcu/+/state",
        "sy/v1/dcu/$SYS/state",
        "sy/v1/dcu//meter/M1/ack",
        "other/topic",
    ],
)
def test_parse_refuses_foreign_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        parse(topic)


@pytest.mark.parametrize("bad_id", ["a/b", "+", "#", "", "$x", "a b"])
def test_builders_refuse_ids_that_would_change_the_topic_shape(bad_id: str) -> None:
    with pytest.raises(TopicError):
        command_topic("DCU01", bad_id)
