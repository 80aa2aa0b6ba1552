"""bytes <-> Envelope with orjson. No I/O. Every bad input raises a ``DecodeError`` subclass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictInt, ValidationError

from campus_protocol.envelope import PROTOCOL_VERSION, Envelope
from campus_protocol.errors import (
    KindMismatch,
    MalformedPayload,
    NodeMismatch,
    TooLarge,
    UnsupportedVersion,
)
from campus_protocol.messages import Body, HubSession, MessageKind, TelemetryBatch, body_model
from campus_protocol.topics import ParsedTopic

MAX_MESSAGE_BYTES = 256 * 1024
_ENVELOPE_FIELDS = frozenset({"v", "node", "epoch", "seq", "sent_at", "kind", "body"})
_KINDS_BY_VALUE = {kind.value: kind for kind in MessageKind}
_NO_BODY = Body()  # the envelope header of encode_stored, validated without its body


def encode(envelope: Envelope, *, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """Serialise ``envelope``; raises ``TooLarge`` rather than emit what the hub would refuse."""
    data = orjson.dumps(envelope.model_dump(mode="json"))
    if len(data) > max_bytes:
        raise TooLarge(f"{envelope.kind.value} message is {len(data)} bytes, bound is {max_bytes}")
    return data


def encode_hub_session(marker: HubSession) -> bytes:
    """The retained payload of the hub's session marker (a bare body: it has no envelope)."""
    return orjson.dumps(marker.model_dump(mode="json"))


def encode_stored(
    *,
    node: str,
    epoch: str,
    seq: int,
    kind: MessageKind,
    body_json: bytes,
    sent_at: datetime | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> bytes:
    """The envelope of a body this package serialised earlier (an outbox row), spliced in as is.

    The envelope fields are validated as ``encode`` does; the body is checked to be a JSON
    object with its model's top-level fields, but not re-validated in depth, which for a batch
    of many device windows costs more than the rest of the uplink together. Raises ``TooLarge``
    past ``max_bytes`` and ``MalformedPayload`` (``invalid_body``) for any other stored bytes.
    """
    try:
        body = orjson.loads(body_json)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"stored body: {exc}", reason="invalid_body") from None
    if not isinstance(body, dict):
        raise MalformedPayload("stored body is not a JSON object", reason="invalid_body")
    fields = body_model(kind, body).model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    if not required <= body.keys() <= fields.keys():
        raise MalformedPayload(
            f"stored {kind.value} body has fields {sorted(body)[:8]}, its model"
            f" needs {sorted(required)}",
            reason="invalid_body",
        )
    header = Envelope(
        node=node,
        epoch=epoch,
        seq=seq,
        sent_at=sent_at or datetime.now(UTC),
        kind=kind,
        body=_NO_BODY,
    )
    head = orjson.dumps(header.model_dump(mode="json", exclude={"body"}))
    data = b"".join((head[:-1], b',"body":', body_json.strip(), b"}"))
    if len(data) > max_bytes:
        raise TooLarge(f"{kind.value} message is {len(data)} bytes, bound is {max_bytes}")
    return data


class _BatchEnvelope(Envelope):
    """An envelope carrying a ``TelemetryBatch``, validated straight from the JSON bytes: the
    envelope's own rules, with ``v`` required and strict as ``decode`` checks it."""

    v: Annotated[StrictInt, Field(ge=PROTOCOL_VERSION, le=PROTOCOL_VERSION)]
    kind: Literal[MessageKind.TELEMETRY]
    body: TelemetryBatch


def decode(
    payload: bytes,
    *,
    topic: ParsedTopic | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Envelope:
    """Parse and validate ``payload``. When ``topic`` is given, node and kind must agree with it.

    A telemetry batch (the hub's bulk of messages) is first validated by pydantic straight from
    the bytes, which costs half as much as JSON to dicts to models; anything that fails there
    (or is of another shape) takes the step-by-step path, which says what is wrong."""
    if len(payload) > max_bytes:
        raise TooLarge(f"payload is {len(payload)} bytes, bound is {max_bytes}")
    envelope = _decode_batch(payload) if b'"windows"' in payload else None
    if envelope is None:
        envelope = _decode_steps(payload)
    if topic is not None:
        if topic.node != envelope.node:
            raise NodeMismatch(f"topic node {topic.node!r} != envelope node {envelope.node!r}")
        if topic.kind != envelope.kind:
            kind = envelope.kind.value
            raise KindMismatch(f"topic kind {topic.kind.value!r} != envelope kind {kind!r}")
    return envelope


def _decode_batch(payload: bytes) -> Envelope | None:
    """The envelope when ``payload`` is a valid telemetry batch, else None."""
    try:
        batch = _BatchEnvelope.model_validate_json(payload)
    except ValidationError:
        return None
    return Envelope.model_construct(**dict(batch))


def _decode_steps(payload: bytes) -> Envelope:
    try:
        raw: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(str(exc), reason="invalid_json") from None
    if not isinstance(raw, dict):
        raise MalformedPayload(f"envelope must be a JSON object, got {type(raw).__name__}")
    missing = _ENVELOPE_FIELDS - raw.keys()
    if missing:
        raise MalformedPayload(f"envelope lacks {sorted(missing)}")
    if raw["v"] != PROTOCOL_VERSION or type(raw["v"]) is not int:
        version = _preview(raw["v"])
        raise UnsupportedVersion(f"version {version}, this code speaks {PROTOCOL_VERSION}")
    kind = _KINDS_BY_VALUE.get(raw["kind"]) if isinstance(raw["kind"], str) else None
    if kind is None:
        raise MalformedPayload(f"unknown kind {_preview(raw['kind'])}")
    try:
        body = body_model(kind, raw["body"]).model_validate(raw["body"])
    except ValidationError as exc:
        raise MalformedPayload(_first_error(exc, "body"), reason="invalid_body") from None
    try:
        return Envelope.model_validate({**raw, "kind": kind, "body": body})
    except ValidationError as exc:
        raise MalformedPayload(_first_error(exc, "envelope")) from None


def _preview(value: Any) -> str:
    """A short rendering of an untrusted JSON value; never recurses into containers."""
    if value is None or isinstance(value, str | int | float):
        return repr(value)[:40]
    return f"<{type(value).__name__}>"


def _first_error(exc: ValidationError, where: str) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    return f"{where}.{loc}: {err['msg']} ({exc.error_count()} error(s))"
