"""The codec: every valid envelope round-trips; every malformed payload is a named DecodeError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campus_protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    CommandResult,
    ConfigDesired,
    DecodeError,
    Envelope,
    Health,
    KindMismatch,
    MalformedPayload,
    MessageKind,
    NodeMismatch,
    OutboxHealth,
    ParsedTopic,
    SiteIdentity,
    State,
    Telemetry,
    TelemetryBatch,
    TooLarge,
    UnsupportedVersion,
    decode,
    encode,
    encode_stored,
    parse_body_json,
    parse_topic,
    uplink_topic,
)
from campus_protocol.messages import DOWNLINK_KINDS, MAX_BATCH_WINDOWS, CommandStatus
from campus_protocol.topics import Direction, downlink_topic
from tests.protocol.strategies import envelopes, json_values, telemetry, telemetry_batches

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The bounded set documented in campus_protocol/errors.py.
REASONS = frozenset(
    {
        "invalid_json",
        "invalid_envelope",
        "invalid_body",
        "too_large",
        "unsupported_version",
        "node_mismatch",
        "kind_mismatch",
        "invalid_topic",
    }
)


def _state_envelope(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "v": 1,
        "node": "gw-1",
        "epoch": "3f2a9c1d0b7e4a55",
        "seq": 7,
        "sent_at": "2025-03-01T08:00:00Z",
        "kind": "state",
        "body": {"online": True},
    }
    raw.update(overrides)
    return raw


def _telemetry_envelope(**body_overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device": "env-101",
        "profile": "renke_rs_gzws_n01",
        "room": "r101",
        "window_start": "2025-03-01T08:00:00Z",
        "window_end": "2025-03-01T08:01:00Z",
        "points": {"temp": {"count": 6, "min": 20.5, "max": 21.0, "mean": 20.7, "last": 20.9}},
    }
    body.update(body_overrides)
    return _state_envelope(kind="telemetry", body=body)


def _topic_for(envelope: Envelope) -> ParsedTopic:
    build = downlink_topic if envelope.kind in DOWNLINK_KINDS else uplink_topic
    return parse_topic(build(envelope.node, envelope.kind))


def _decode_or_named_error(payload: bytes) -> Envelope | DecodeError:
    """Decode; a DecodeError is returned (and checked), anything else propagates and fails."""
    try:
        return decode(payload)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc.reason
        return exc


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MessageKind), ids=str)
@FEW
@given(data=st.data())
def test_every_kind_round_trips_through_encode_and_decode(kind: MessageKind, data: st.DataObject):
    envelope = data.draw(envelopes(kind))
    assert decode(encode(envelope)) == envelope


@PROPERTY
@given(envelope=envelopes())
def test_decode_with_the_topic_the_envelope_belongs_on_returns_it(envelope: Envelope):
    assert decode(encode(envelope), topic=_topic_for(envelope)) == envelope


@PROPERTY
@given(envelope=envelopes())
def test_encoded_envelopes_are_compact_json_objects_with_the_protocol_version(envelope: Envelope):
    raw = orjson.loads(encode(envelope))
    assert raw["v"] == PROTOCOL_VERSION
    assert raw["kind"] == envelope.kind.value
    assert set(raw) == {"v", "node", "epoch", "seq", "sent_at", "kind", "body"}


# --- topic agreement --------------------------------------------------------------------------


def test_an_envelope_from_another_node_than_its_topic_raises_node_mismatch():
    payload = orjson.dumps(_state_envelope(node="gw-2"))
    with pytest.raises(NodeMismatch) as info:
        decode(payload, topic=parse_topic("campus/v1/gw-1/up/state"))
    assert info.value.reason == "node_mismatch"


def test_an_envelope_of_another_kind_than_its_topic_raises_kind_mismatch():
    payload = orjson.dumps(_state_envelope())
    with pytest.raises(KindMismatch) as info:
        decode(payload, topic=ParsedTopic("gw-1", Direction.UP, MessageKind.HEALTH))
    assert info.value.reason == "kind_mismatch"


# --- malformed input never escapes as anything but a DecodeError ------------------------------


@PROPERTY
@given(payload=st.binary(max_size=512))
def test_arbitrary_bytes_raise_a_named_decode_error(payload: bytes):
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.reason in REASONS


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_values_raise_a_named_decode_error(value: Any):
    with pytest.raises(DecodeError) as info:
        decode(orjson.dumps(value))
    assert info.value.reason in REASONS


# Values that are well-formed JSON yet near a boundary of some field.
_REPLACEMENTS = json_values | st.sampled_from(
    ["2025-03-01T08:00:00", "2025-03-01T08:00:00+01:00", "", "1", 0, -1, 2**63, 2**64 - 1, 1e308]
)


@st.composite
def _mutated_envelopes(draw: st.DrawFn) -> bytes:
    """A valid envelope with one field, anywhere in the tree, removed or replaced by any JSON."""
    raw = orjson.loads(encode(draw(envelopes())))
    parent: Any = raw
    key: Any = draw(st.sampled_from(sorted(raw)))
    while isinstance(parent[key], dict | list) and parent[key] and draw(st.booleans()):
        parent = parent[key]
        keys = sorted(parent) if isinstance(parent, dict) else range(len(parent))
        key = draw(st.sampled_from(keys))
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(_REPLACEMENTS)
    return orjson.dumps(raw)


@PROPERTY
@given(payload=_mutated_envelopes())
def test_every_malformed_payload_raises_a_named_decode_error(payload: bytes):
    _decode_or_named_error(payload)  # a valid mutation may decode; any other exception fails


@pytest.mark.parametrize("field", ["v", "node", "epoch", "seq", "sent_at", "kind", "body"])
def test_an_envelope_missing_any_field_is_malformed(field: str):
    raw = _state_envelope()
    del raw[field]
    with pytest.raises(MalformedPayload) as info:
        decode(orjson.dumps(raw))
    assert info.value.reason == "invalid_envelope"


def test_an_envelope_with_an_unknown_field_is_malformed():
    with pytest.raises(MalformedPayload, match="invalid_envelope"):
        decode(orjson.dumps(_state_envelope(extra=1)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("node", 1),
        ("node", None),
        ("node", "GW-1"),
        ("node", ""),
        ("node", "+"),
        ("node", "x" * 65),
        ("seq", "seven"),
        ("seq", None),
        ("seq", []),
        ("seq", 1.5),
        ("seq", "108"),  # a string or float seq is never coerced: it must be a JSON integer
        ("seq", 109.0),
        ("seq", True),
        ("epoch", None),
        ("epoch", ""),
        ("epoch", "has space"),
        ("epoch", "x" * 33),
        ("seq", -1),
        ("seq", 2**63),
        ("sent_at", "yesterday"),
        ("sent_at", "2025-03-01T08:00:00"),  # naive
        ("sent_at", None),
        ("sent_at", {}),
        ("kind", None),
        ("kind", 3),
        ("kind", "TELEMETRY"),
        ("kind", "bogus"),
        ("kind", ["state"]),
        ("body", None),
        ("body", []),
        ("body", "online"),
        ("body", {}),
        ("body", {"online": True, "extra": 1}),
    ],
)
def test_an_envelope_field_of_the_wrong_type_or_shape_is_malformed(field: str, value: Any):
    with pytest.raises(MalformedPayload) as info:
        decode(orjson.dumps(_state_envelope(**{field: value})))
    expected = "invalid_body" if field == "body" else "invalid_envelope"
    assert info.value.reason == expected


@pytest.mark.parametrize(
    "body_overrides",
    [
        {"window_start": "2025-03-01T08:00:00"},  # naive start vs aware end
        {"window_end": "2025-03-01T08:01:00"},  # aware start vs naive end
        {"window_end": "2025-03-01T08:00:00Z"},  # empty window
        {"points": {}},
        {"points": {"bad key!": {"count": 1, "min": 0, "max": 0, "mean": 0, "last": 0}}},
        {"points": {"t": {"count": 1, "min": 2, "max": 1, "mean": 1.5, "last": 1.5}}},
        {"points": {"t": {"count": 0, "min": 0, "max": 0, "mean": 0, "last": 0}}},
        {"device": ""},
    ],
    ids=[
        "naive-start",
        "naive-end",
        "empty-window",
        "no-points",
        "bad-point-id",
        "min-above-max",
        "zero-count",
        "empty-device",
    ],
)
def test_an_invalid_telemetry_body_is_an_invalid_body(body_overrides: dict[str, Any]):
    with pytest.raises(MalformedPayload) as info:
        decode(orjson.dumps(_telemetry_envelope(**body_overrides)))
    assert info.value.reason == "invalid_body"


@pytest.mark.parametrize("depth", [100, 990, 1000, 1024, 5000])
@pytest.mark.parametrize("field", ["v", "node", "seq", "sent_at", "kind", "body", None])
def test_deeply_nested_json_anywhere_raises_a_named_decode_error(field: str | None, depth: int):
    if field is None:
        payload = _nested(depth)
    else:
        placeholder = _state_envelope(**{field: "@@"})
        payload = orjson.dumps(placeholder).replace(b'"@@"', _nested(depth))
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.reason in REASONS


@pytest.mark.parametrize(
    "literal",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400],
)
@pytest.mark.parametrize("field", ["v", "seq"])
def test_non_finite_and_huge_number_literals_raise_a_named_decode_error(field: str, literal: bytes):
    payload = orjson.dumps(_state_envelope(**{field: "@@"})).replace(b'"@@"', literal)
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.reason in REASONS


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e400", b"1e30"])
def test_non_finite_or_huge_stats_are_rejected(literal: bytes):
    payload = orjson.dumps(_telemetry_envelope()).replace(b"20.9", literal)
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.reason in {"invalid_json", "invalid_body"}


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        b"\xc3\x28",
        orjson.dumps(_state_envelope()).replace(b"gw-1", b"gw-\xff"),
        orjson.dumps(_state_envelope()).replace(b"gw-1", b"gw-\xed\xa0\x80"),  # encoded surrogate
    ],
)
def test_non_utf8_payloads_are_invalid_json(payload: bytes):
    with pytest.raises(MalformedPayload) as info:
        decode(payload)
    assert info.value.reason == "invalid_json"


def test_a_lone_surrogate_escape_is_invalid_json():
    payload = orjson.dumps(_state_envelope()).replace(b'"gw-1"', b'"\\ud800"')
    with pytest.raises(MalformedPayload, match="invalid_json"):
        decode(payload)


@pytest.mark.parametrize("payload", [b"", b" ", b"{", b"null", b"[]", b'"state"', b"1"])
def test_empty_truncated_or_non_object_payloads_are_malformed(payload: bytes):
    with pytest.raises(MalformedPayload) as info:
        decode(payload)
    assert info.value.reason in {"invalid_json", "invalid_envelope"}


# --- size bound -------------------------------------------------------------------------------


def test_a_payload_exactly_at_the_bound_decodes_and_one_byte_more_is_too_large():
    payload = orjson.dumps(_state_envelope())
    at_bound = payload + b" " * (MAX_MESSAGE_BYTES - len(payload))
    assert decode(at_bound).body == State(online=True)
    with pytest.raises(TooLarge) as info:
        decode(at_bound + b" ")
    assert info.value.reason == "too_large"


def test_an_oversized_payload_is_too_large_before_it_is_parsed():
    with pytest.raises(TooLarge):
        decode(b"\xff" * (MAX_MESSAGE_BYTES + 1))


def test_encode_refuses_an_envelope_larger_than_the_bound():
    body = ConfigDesired(revision=1, config={"blob": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(TooLarge) as info:
        encode(Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=body))
    assert info.value.reason == "too_large"


def test_encode_and_decode_honour_a_smaller_bound():
    envelope = Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=State(online=False))
    payload = encode(envelope)
    assert encode(envelope, max_bytes=len(payload)) == payload
    with pytest.raises(TooLarge):
        encode(envelope, max_bytes=len(payload) - 1)
    with pytest.raises(TooLarge):
        decode(payload, max_bytes=len(payload) - 1)


# --- version ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, -1, "1", True, False, 1.0, None, [1], {"v": 1}])
def test_any_version_but_integer_one_is_unsupported(version: Any):
    with pytest.raises(UnsupportedVersion) as info:
        decode(orjson.dumps(_state_envelope(v=version)))
    assert info.value.reason == "unsupported_version"


@pytest.mark.parametrize("version", [2, 0, "1", True, 1.0, None])
def test_a_telemetry_batch_too_is_unsupported_in_any_version_but_integer_one(version: Any):
    """Batches are validated straight from the bytes first: the same rules hold there."""
    window = _telemetry_envelope()["body"]
    batch = {**_telemetry_envelope(), "v": version, "body": {"windows": [window]}}
    with pytest.raises(UnsupportedVersion):
        decode(orjson.dumps(batch))


# --- bodies that cannot be sent are refused where they are built ------------------------------


@pytest.mark.parametrize("field", ["uptime_s", "heartbeat_interval_s"])
def test_a_health_with_an_infinite_duration_is_refused_at_construction(field: str):
    values: dict[str, Any] = {
        "site": SiteIdentity(city_id="c", district_id="d", school_id="s"),
        "agent_version": "0.1.0",
        "started_at": datetime(2025, 3, 1, tzinfo=UTC),
        "uptime_s": 1.0,
        "heartbeat_interval_s": 30.0,
        "outbox_depth": 0,
        "devices": [],
    }
    values[field] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        Health(**values)


# --- many device windows in one telemetry message ---------------------------------------------


@PROPERTY
@given(batch=telemetry_batches)
def test_a_telemetry_batch_round_trips_as_kind_telemetry(batch: TelemetryBatch):
    envelope = Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=batch)
    assert envelope.kind is MessageKind.TELEMETRY
    decoded = decode(encode(envelope), topic=parse_topic(uplink_topic("gw-1", envelope.kind)))
    assert isinstance(decoded.body, TelemetryBatch)
    assert decoded == envelope


@FEW
@given(body=telemetry() | telemetry_batches)
def test_a_stored_telemetry_body_parses_back_to_its_own_model(body: Telemetry | TelemetryBatch):
    assert parse_body_json(MessageKind.TELEMETRY, body.model_dump_json().encode()) == body


def test_a_single_window_body_from_an_older_agent_still_decodes_as_telemetry():
    decoded = decode(orjson.dumps(_telemetry_envelope()))
    assert isinstance(decoded.body, Telemetry)
    assert decoded.body.points["temp"].p95 is None
    assert decoded.body.samples == {}


@pytest.mark.parametrize(
    "body",
    [
        {"windows": []},
        {"windows": None},
        {"windows": [{"device": "x"}]},
        {"windows": [_telemetry_envelope()["body"]], "extra": 1},
        {"windows": [_telemetry_envelope()["body"]] * (MAX_BATCH_WINDOWS + 1)},
    ],
    ids=["empty", "null", "bad-window", "unknown-field", "too-many-windows"],
)
def test_an_invalid_telemetry_batch_is_an_invalid_body(body: dict[str, Any]):
    with pytest.raises(MalformedPayload) as info:
        decode(orjson.dumps(_state_envelope(kind="telemetry", body=body)), max_bytes=2**20)
    assert info.value.reason == "invalid_body"


def test_a_p95_outside_min_and_max_is_an_invalid_body():
    stats = {"count": 2, "min": 1, "max": 2, "mean": 1.5, "last": 2, "p95": 3}
    with pytest.raises(MalformedPayload, match="p95"):
        decode(orjson.dumps(_telemetry_envelope(points={"t": stats})))


# --- the heartbeat's outbox report (added fields: older agents send none) ----------------------


def _health_values() -> dict[str, Any]:
    return {
        "site": SiteIdentity(city_id="c", district_id="d", school_id="s"),
        "agent_version": "0.1.0",
        "started_at": datetime(2025, 3, 1, tzinfo=UTC),
        "uptime_s": 1.0,
        "heartbeat_interval_s": 30.0,
        "outbox_depth": 0,
        "devices": [],
    }


def test_a_heartbeat_without_an_outbox_report_from_an_older_agent_still_decodes():
    envelope = Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=Health(**_health_values()))
    raw = orjson.loads(encode(envelope))
    assert "outbox" not in raw["body"] or raw["body"]["outbox"] is None
    raw["body"].pop("outbox", None)

    decoded = decode(orjson.dumps(raw))

    assert isinstance(decoded.body, Health) and decoded.body.outbox is None


def test_a_command_result_without_attempts_from_an_older_agent_decodes_with_none_counted():
    result = CommandResult(
        id="c-1", ok=True, status=CommandStatus.SUCCEEDED, readback=1.0, attempts=2
    )
    raw = orjson.loads(encode(Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=result)))
    assert raw["body"]["attempts"] == 2
    raw["body"].pop("attempts")

    decoded = decode(orjson.dumps(raw))

    assert isinstance(decoded.body, CommandResult)
    assert (decoded.body.readback, decoded.body.attempts) == (1.0, 0)


def test_a_heartbeat_carries_the_outbox_budget_merges_drops_and_autonomy():
    report = OutboxHealth(
        bytes=900,
        budget_bytes=1000,
        offline_autonomy_h=0.5,
        merged_windows=120,
        discarded_windows=30,
        discarded={"telemetry:disk_budget": 3, "event:disk_full": 1},
        disk="disk_full",
    )
    envelope = Envelope.wrap(
        node="gw-1", epoch="e1", seq=1, body=Health(**_health_values(), outbox=report)
    )

    decoded = decode(encode(envelope))

    assert isinstance(decoded.body, Health) and decoded.body.outbox == report


@pytest.mark.parametrize(
    "overrides",
    [
        {"bytes": -1},
        {"budget_bytes": 0},
        {"offline_autonomy_h": -1.0},
        {"merged_windows": -5},
        {"discarded": {"bad key!": 1}},
        {"disk": ""},
        {"unknown": 1},
    ],
    ids=[
        "negative-bytes",
        "zero-budget",
        "negative-autonomy",
        "negative-merged",
        "bad-reason-key",
        "empty-disk",
        "unknown-field",
    ],
)
def test_an_invalid_outbox_report_is_an_invalid_body(overrides: dict[str, Any]):
    raw = orjson.loads(
        encode(Envelope.wrap(node="gw-1", epoch="e1", seq=1, body=Health(**_health_values())))
    )
    raw["body"]["outbox"] = {"bytes": 0, "budget_bytes": 1, **overrides}
    with pytest.raises(MalformedPayload) as info:
        decode(orjson.dumps(raw))
    assert info.value.reason == "invalid_body"


# --- stored bodies spliced into an envelope ---------------------------------------------------


@PROPERTY
@given(envelope=envelopes())
def test_a_stored_body_spliced_into_an_envelope_decodes_to_the_same_envelope(envelope: Envelope):
    payload = encode_stored(
        node=envelope.node,
        epoch=envelope.epoch,
        seq=envelope.seq,
        kind=envelope.kind,
        body_json=envelope.body.model_dump_json().encode(),
        sent_at=envelope.sent_at,
    )
    assert decode(payload) == envelope
    assert len(payload) == len(encode(envelope))


@pytest.mark.parametrize("stored", [b"", b"{", b"[1]", b"null", b"\xff"])
def test_a_stored_body_that_is_not_a_json_object_is_an_invalid_body(stored: bytes):
    with pytest.raises(MalformedPayload) as info:
        encode_stored(node="gw-1", epoch="e", seq=1, kind=MessageKind.TELEMETRY, body_json=stored)
    assert info.value.reason == "invalid_body"


def test_a_spliced_envelope_past_the_bound_is_too_large():
    body = ConfigDesired(revision=1, config={"blob": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(TooLarge):
        encode_stored(
            node="gw-1",
            epoch="e",
            seq=1,
            kind=MessageKind.CONFIG,
            body_json=body.model_dump_json().encode(),
        )


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        (MessageKind.TELEMETRY, b'{"device": 1}'),
        (MessageKind.STATE, b'{"online": true, "x": 1}'),
    ],
)
def test_a_stored_body_without_its_models_fields_is_an_invalid_body(
    kind: MessageKind, stored: bytes
):
    with pytest.raises(MalformedPayload, match="invalid_body"):
        encode_stored(node="gw-1", epoch="e", seq=1, kind=kind, body_json=stored)
