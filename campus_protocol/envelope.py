"""The envelope every message travels in: version, node, per-node seq, send time, kind, body."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny, StrictInt

from campus_protocol.messages import Body, MessageKind
from campus_protocol.topics import NODE_ID_PATTERN

PROTOCOL_VERSION = 1

NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN.pattern)]
EPOCH_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
Epoch = Annotated[str, Field(pattern=EPOCH_PATTERN)]


def new_epoch() -> str:
    """A fresh random epoch id (16 hex digits) for a new outbox."""
    return secrets.token_hex(8)


class Envelope(BaseModel):
    """A validated message. ``seq`` is per node and epoch, strictly increasing and survives
    restarts; ``epoch`` names the outbox that numbered it. The hub deduplicates on
    ``(node, epoch, seq)``. ``seq`` must be a JSON integer: ``"108"`` or ``109.0`` is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = PROTOCOL_VERSION
    node: NodeId
    epoch: Epoch
    seq: StrictInt = Field(ge=0, lt=2**63)
    sent_at: AwareDatetime
    kind: MessageKind
    body: SerializeAsAny[Body]

    @classmethod
    def wrap(
        cls, *, node: str, epoch: str, seq: int, body: Body, sent_at: datetime | None = None
    ) -> Envelope:
        """Build an envelope for ``body``, inferring its kind."""
        from campus_protocol.messages import BODY_KINDS

        kind = BODY_KINDS[type(body)]
        return cls(
            node=node,
            epoch=epoch,
            seq=seq,
            sent_at=sent_at or datetime.now(UTC),
            kind=kind,
            body=body,
        )
