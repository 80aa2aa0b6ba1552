"""Build and parse ``campus/v1/<node>/{up,down}/<kind>``: the only place topics are built.

One more topic stands beside them: ``HUB_SESSION_TOPIC``, where the hub keeps its retained
session marker (see ``cloud_hub/ingest/consumer.py``) and every uplink reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from campus_protocol.errors import InvalidTopic
from campus_protocol.messages import DOWNLINK_KINDS, UPLINK_KINDS, MessageKind

TOPIC_ROOT = "campus/v1"
NODE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: the hub's retained "my persistent session exists on this broker" marker (``HubSession``);
#: four levels, so no ``<node>/{up,down}/<kind>`` topic or filter ever matches it
HUB_SESSION_TOPIC = f"{TOPIC_ROOT}/hub/session"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    node: str
    direction: Direction
    kind: MessageKind


def validate_node_id(node: str) -> str:
    """Return ``node`` if it is a valid node id (lowercase, digits, ``-``/``_``, <= 64 chars)."""
    if not NODE_ID_PATTERN.fullmatch(node):
        raise InvalidTopic(f"node id {node!r} must match {NODE_ID_PATTERN.pattern}")
    return node


def uplink_topic(node: str, kind: MessageKind) -> str:
    """Topic a node publishes ``kind`` on, e.g. ``campus/v1/gw-1/up/telemetry``."""
    if kind not in UPLINK_KINDS:
        raise InvalidTopic(f"{kind.value!r} is not an uplink kind")
    return f"{TOPIC_ROOT}/{validate_node_id(node)}/up/{kind.value}"


def downlink_topic(node: str, kind: MessageKind) -> str:
    """Topic the hub publishes ``kind`` on for ``node``, e.g. ``campus/v1/gw-1/down/cmd``."""
    if kind not in DOWNLINK_KINDS:
        raise InvalidTopic(f"{kind.value!r} is not a downlink kind")
    return f"{TOPIC_ROOT}/{validate_node_id(node)}/down/{kind.value}"


def hub_subscription(share_group: str | None = None) -> str:
    """Filter the hub ingest subscribes to; a shared subscription when ``share_group`` is set."""
    base = f"{TOPIC_ROOT}/+/up/#"
    return f"$share/{share_group}/{base}" if share_group else base


def node_downlink_subscription(node: str) -> str:
    """Filter a node subscribes to for its commands and desired config."""
    return f"{TOPIC_ROOT}/{validate_node_id(node)}/down/#"


def parse_topic(topic: str) -> ParsedTopic:
    """Parse a concrete topic; raises ``InvalidTopic`` for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT:
        raise InvalidTopic(f"{topic[:200]!r} is not {TOPIC_ROOT}/<node>/<up|down>/<kind>")
    _, _, node, direction, kind = parts
    validate_node_id(node)
    try:
        parsed_direction = Direction(direction)
        parsed_kind = MessageKind(kind)
    except ValueError as exc:
        raise InvalidTopic(f"{topic[:200]!r}: {exc}") from None
    allowed = UPLINK_KINDS if parsed_direction is Direction.UP else DOWNLINK_KINDS
    if parsed_kind not in allowed:
        raise InvalidTopic(f"{topic[:200]!r}: {kind!r} is not a {direction} kind")
    return ParsedTopic(node=node, direction=parsed_direction, kind=parsed_kind)
