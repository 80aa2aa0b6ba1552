"""The campus-iot wire contract shared by the edge agent and the cloud hub.

Nothing else in the project builds topic strings or envelopes by hand.
"""

from campus_protocol.codec import MAX_MESSAGE_BYTES, decode, encode
from campus_protocol.envelope import PROTOCOL_VERSION, Envelope
from campus_protocol.errors import (
    DecodeError,
    InvalidTopic,
    KindMismatch,
    MalformedPayload,
    NodeMismatch,
    ProtocolError,
    TooLarge,
    UnsupportedVersion,
)
from campus_protocol.messages import (
    BODY_MODELS,
    Command,
    CommandResult,
    ConfigDesired,
    DeviceHealth,
    DeviceStatus,
    Event,
    EventState,
    Health,
    MessageKind,
    PointStats,
    Reported,
    Severity,
    SiteIdentity,
    State,
    Telemetry,
)
from campus_protocol.topics import (
    Direction,
    ParsedTopic,
    downlink_topic,
    hub_subscription,
    parse_topic,
    uplink_topic,
)

__all__ = [
    "BODY_MODELS",
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "Command",
    "CommandResult",
    "ConfigDesired",
    "DecodeError",
    "DeviceHealth",
    "DeviceStatus",
    "Direction",
    "Envelope",
    "Event",
    "EventState",
    "Health",
    "InvalidTopic",
    "KindMismatch",
    "MalformedPayload",
    "MessageKind",
    "NodeMismatch",
    "ParsedTopic",
    "PointStats",
    "ProtocolError",
    "Reported",
    "Severity",
    "SiteIdentity",
    "State",
    "Telemetry",
    "TooLarge",
    "UnsupportedVersion",
    "decode",
    "downlink_topic",
    "encode",
    "hub_subscription",
    "parse_topic",
    "uplink_topic",
]
