"""Topics: built only by campus_protocol, parsed strictly, always ``InvalidTopic`` when wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_protocol import (
    DecodeError,
    Direction,
    InvalidTopic,
    MessageKind,
    ParsedTopic,
    downlink_topic,
    hub_subscription,
    parse_topic,
    uplink_topic,
)
from campus_protocol.messages import DOWNLINK_KINDS, UPLINK_KINDS
from campus_protocol.topics import node_downlink_subscription
from tests.protocol.strategies import node_ids

PROPERTY = settings(max_examples=250, deadline=None)

UPLINKS = sorted(UPLINK_KINDS)
DOWNLINKS = sorted(DOWNLINK_KINDS)


def test_uplink_and_downlink_kinds_partition_every_message_kind():
    assert set(MessageKind) == UPLINK_KINDS | DOWNLINK_KINDS
    assert not UPLINK_KINDS & DOWNLINK_KINDS


@PROPERTY
@given(node=node_ids, kind=st.sampled_from(UPLINKS))
def test_every_uplink_topic_parses_back_to_its_node_and_kind(node: str, kind: MessageKind):
    topic = uplink_topic(node, kind)
    assert topic == f"campus/v1/{node}/up/{kind.value}"
    assert parse_topic(topic) == ParsedTopic(node=node, direction=Direction.UP, kind=kind)


@PROPERTY
@given(node=node_ids, kind=st.sampled_from(DOWNLINKS))
def test_every_downlink_topic_parses_back_to_its_node_and_kind(node: str, kind: MessageKind):
    topic = downlink_topic(node, kind)
    assert topic == f"campus/v1/{node}/down/{kind.value}"
    assert parse_topic(topic) == ParsedTopic(node=node, direction=Direction.DOWN, kind=kind)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "campus",
        "campus/v1",
        "campus/v1/gw-1",
        "campus/v1/gw-1/up",  # missing kind
        "campus/v1/gw-1/up/telemetry/extra",  # extra level
        "campus/v1/gw-1/up/telemetry/",  # trailing slash
        "/campus/v1/gw-1/up/telemetry",  # leading slash
        "campus//gw-1/up/telemetry",
        "school/v1/gw-1/up/telemetry",  # wrong root
        "Campus/v1/gw-1/up/telemetry",
        "campus/v2/gw-1/up/telemetry",  # wrong version segment
        "campus/1/gw-1/up/telemetry",
        "campus/V1/gw-1/up/telemetry",
        "campus/v1/+/up/telemetry",  # wildcards as node
        "campus/v1/#/up/telemetry",
        "campus/v1/gw-1/+/telemetry",
        "campus/v1/gw-1/up/#",
        "campus/v1/gw-1/up/+",
        "campus/v1//up/telemetry",  # empty node
        "campus/v1/GW-1/up/telemetry",  # uppercase node
        "campus/v1/-gw/up/telemetry",  # node must start with a letter or digit
        "campus/v1/gw 1/up/telemetry",
        "campus/v1/gw.1/up/telemetry",
        "campus/v1/gw-1\n/up/telemetry",
        f"campus/v1/{'a' * 65}/up/telemetry",  # too long node
        "campus/v1/gw-1/UP/telemetry",
        "campus/v1/gw-1/sideways/telemetry",
        "campus/v1/gw-1/up/Telemetry",
        "campus/v1/gw-1/up/alerts",
        "campus/v1/gw-1/up/cmd",  # downlink kind under up/
        "campus/v1/gw-1/up/config",
        "campus/v1/gw-1/down/telemetry",  # uplink kind under down/
        "campus/v1/gw-1/down/state",
        "campus/v1/gw-1/down/cmdres",
    ],
)
def test_parse_topic_rejects_anything_but_a_concrete_campus_topic(topic: str):
    with pytest.raises(InvalidTopic) as info:
        parse_topic(topic)
    assert info.value.reason == "invalid_topic"


def test_invalid_topic_is_a_decode_error_so_ingest_counts_it_like_bad_payloads():
    assert issubclass(InvalidTopic, DecodeError)


@PROPERTY
@given(topic=st.text(max_size=120))
def test_parse_topic_raises_only_invalid_topic_for_arbitrary_strings(topic: str):
    try:
        parsed = parse_topic(topic)
    except InvalidTopic:
        return
    rebuild = uplink_topic if parsed.direction is Direction.UP else downlink_topic
    assert rebuild(parsed.node, parsed.kind) == topic


def test_a_very_long_topic_is_rejected_with_a_bounded_message():
    with pytest.raises(InvalidTopic) as info:
        parse_topic("campus/v1/" + "x" * 100_000)
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("kind", DOWNLINKS, ids=str)
def test_uplink_topic_refuses_a_downlink_kind(kind: MessageKind):
    with pytest.raises(InvalidTopic):
        uplink_topic("gw-1", kind)


@pytest.mark.parametrize("kind", UPLINKS, ids=str)
def test_downlink_topic_refuses_an_uplink_kind(kind: MessageKind):
    with pytest.raises(InvalidTopic):
        downlink_topic("gw-1", kind)


BUILDERS = {
    "uplink_topic": lambda node: uplink_topic(node, MessageKind.TELEMETRY),
    "downlink_topic": lambda node: downlink_topic(node, MessageKind.CMD),
    "node_downlink_subscription": node_downlink_subscription,
}


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize("node", ["", "+", "#", "GW-1", "gw/1", "gw 1", "a" * 65, "_gw"])
def test_topic_builders_refuse_an_invalid_node_id(builder: str, node: str):
    with pytest.raises(InvalidTopic):
        BUILDERS[builder](node)


def test_hub_subscription_without_a_share_group_reads_every_node_uplink():
    assert hub_subscription() == "campus/v1/+/up/#"


def test_hub_subscription_with_a_share_group_is_an_mqtt5_shared_subscription():
    assert hub_subscription("ingest") == "$share/ingest/campus/v1/+/up/#"


def test_a_node_subscribes_to_its_own_downlink_subtree_only():
    assert node_downlink_subscription("gw-1") == "campus/v1/gw-1/down/#"
