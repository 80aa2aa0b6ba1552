"""The envelope every message travels in: version, node, per-node seq, send time, kind, body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from campus_protocol.messages import Body, MessageKind
from campus_protocol.topics import NODE_ID_PATTERN

PROTOCOL_VERSION = 1

NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN.pattern)]


class Envelope(BaseModel):
    """A validated message. ``seq`` is per node, strictly increasing and survives restarts;
    the hub deduplicates on ``(node, seq)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = PROTOCOL_VERSION
    node: NodeId
    seq: int = Field(ge=0, lt=2**63)
    sent_at: AwareDatetime
    kind: MessageKind
    body: SerializeAsAny[Body]

    @classmethod
    def wrap(cls, *, node: str, seq: int, body: Body, sent_at: datetime | None = None) -> Envelope:
        """Build an envelope for ``body``, inferring its kind."""
        from campus_protocol.messages import BODY_KINDS

        kind = BODY_KINDS[type(body)]
        return cls(node=node, seq=seq, sent_at=sent_at or datetime.now(UTC), kind=kind, body=body)
