"""The protocol exception family.

``ProtocolError`` is the root. ``DecodeError`` and its subclasses mean the *remote* side sent
something invalid; each carries a bounded ``reason`` code usable as a metric label.
``InvalidTopic`` is raised both for bad incoming topics and for local misuse of the builders.
"""


class ProtocolError(Exception):
    """Base class of every error raised by ``campus_protocol``."""


class DecodeError(ProtocolError):
    """Incoming bytes could not be turned into a valid envelope.

    ``reason`` is one of a small fixed set of codes (``invalid_json``, ``invalid_envelope``,
    ``invalid_body``, ``too_large``, ``unsupported_version``, ``node_mismatch``,
    ``kind_mismatch``, ``invalid_topic``) so that it can label a counter.
    """

    reason = "malformed"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail


class MalformedPayload(DecodeError):
    """The payload is not JSON, or not a valid envelope, or its body does not match its kind."""

    def __init__(self, detail: str, *, reason: str = "invalid_envelope") -> None:
        self.reason = reason
        super().__init__(detail)


class TooLarge(DecodeError):
    """The payload exceeds the size bound."""

    reason = "too_large"


class UnsupportedVersion(DecodeError):
    """The envelope declares a protocol version this code does not speak."""

    reason = "unsupported_version"


class NodeMismatch(DecodeError):
    """The envelope's node differs from the node in the topic it arrived on."""

    reason = "node_mismatch"


class KindMismatch(DecodeError):
    """The envelope's kind differs from the kind in the topic it arrived on."""

    reason = "kind_mismatch"


class InvalidTopic(DecodeError):
    """A topic string is not ``campus/v1/<node>/<up|down>/<kind>`` with a valid node and kind."""

    reason = "invalid_topic"


class UnexpectedKind(DecodeError):
    """A valid kind this receiver does not take: a federation kind from a gateway at a regional
    hub, or a gateway's kind at the central hub."""

    reason = "unexpected_kind"
