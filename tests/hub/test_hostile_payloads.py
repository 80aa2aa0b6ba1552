"""Hostile uplink payloads of every message kind, through ``IngestWorker.process_batch``: each is
rejected and counted (or, when a mutation happens to stay valid, stored like any other message),
the worker never raises, and the good messages in the same batch are stored all the same."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from campus_protocol import (
    AlertChanges,
    MessageKind,
    encode,
    uplink_topic,
)
from campus_protocol.codec import MAX_MESSAGE_BYTES
from campus_protocol.messages import FEDERATION_KINDS, UPLINK_KINDS
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import TelemetryWindow
from cloud_hub.federation.ingest import FederationWorker
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from device_profiles.loader import load_profiles
from tests.hub.builders import T0, alert_change, heartbeat, message, stats, telemetry
from tests.protocol.strategies import BODIES, envelopes, json_values

HOSTILE_VALUES = st.one_of(
    json_values,
    st.just(2**80),
    st.just(-(2**80)),
    st.just("x" * 100_000),
    st.just("'; DROP TABLE telemetry_window; --"),
    st.just("\u0000\ud7ff\uffff"),
    st.just(orjson.loads(b"[" * 200 + b"]" * 200)),  # deep nesting
    st.just({"$ne": None}),
    st.just("gw-2"),  # another gateway's id wherever an id goes
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, kind: MessageKind, node: str = "gw-1") -> bytes:
    """A valid message of ``kind`` with one value replaced by something hostile, or deleted."""
    document = orjson.loads(encode(draw(envelopes(kind))))
    document["node"] = node  # the topic's node, so the mutation is what gets tested
    path = draw(st.sampled_from(_paths(document)))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(HOSTILE_VALUES)
    return json.dumps(document).encode()  # the stdlib writes integers past 64 bits too


def hostile_payloads(kind: MessageKind, node: str = "gw-1") -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(kind, node),
        st.binary(max_size=512),
        st.just(b"{" * 50_000),
        st.just(b"[" * 100_000 + b"]" * 100_000),
        st.just(b'{"v": 1, "pad": "' + b"x" * (MAX_MESSAGE_BYTES + 1) + b'"}'),
        st.just(b"\xff\xfe\x00{}"),
        st.just(b"null"),
        st.just(b'{"v": 99}'),
    )


@st.composite
def hostile_messages(draw: st.DrawFn) -> tuple[MessageKind, bytes]:
    kind = draw(st.sampled_from(sorted(UPLINK_KINDS)))
    return kind, draw(hostile_payloads(kind))


assert BODIES.keys() >= UPLINK_KINDS >= FEDERATION_KINDS


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> IngestWorker:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'hub.db'}")
    create_schema(engine)
    worker = IngestWorker(make_sessionmaker(engine), profiles=load_profiles())
    assert worker.process(*heartbeat(seq=0)).status is OutcomeStatus.ACCEPTED
    return worker


SEQ = itertools.count(1)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile=hostile_messages())
def test_a_hostile_payload_of_any_kind_is_handled_and_the_good_messages_beside_it_are_stored(
    worker: IngestWorker, hostile: tuple[MessageKind, bytes]
) -> None:
    kind, payload = hostile
    before = _windows(worker)
    rejected = worker.rejected
    first, second = next(SEQ) * 2, next(SEQ) * 2 + 1
    good = [
        telemetry(seq=first, points={"co2": stats(500 + first % 100, unit="ppm")},
                  start=_window(first)),
        telemetry(seq=second, points={"co2": stats(500, unit="ppm")}, start=_window(second)),
    ]  # fmt: skip

    outcomes = worker.process_batch([good[0], (uplink_topic("gw-1", kind), payload), good[1]])

    assert [outcomes[0].status, outcomes[2].status] == [OutcomeStatus.ACCEPTED] * 2
    assert outcomes[1].status is not OutcomeStatus.KEPT, outcomes[1]
    if outcomes[1].status is OutcomeStatus.REJECTED:
        assert outcomes[1].reason and len(outcomes[1].reason) <= 40  # a bounded label
        assert worker.rejected == rejected + 1
    assert _windows(worker) == before + 2


def _window(seq: int) -> datetime:
    return T0 + timedelta(seconds=10 * seq)


def _windows(worker: IngestWorker) -> int:
    with worker._sessions() as session:
        return session.scalar(select(func.count()).select_from(TelemetryWindow)) or 0


def test_the_rejections_are_counted_by_reason_in_prometheus(worker: IngestWorker) -> None:
    from prometheus_client import REGISTRY

    worker.process(uplink_topic("gw-1", MessageKind.TELEMETRY), b"\xff not json")

    value = REGISTRY.get_sample_value(
        "campus_ingest_errors_total", {"error_type": "invalid_json", "stage": "receiving"}
    )
    assert value is not None and value >= 1


REGIONAL = "region-north"


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> FederationWorker:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('hostile-central') / 'hub.db'}")
    create_schema(engine)
    return FederationWorker(make_sessionmaker(engine))


@st.composite
def hostile_reports(draw: st.DrawFn) -> tuple[MessageKind, bytes]:
    kind = draw(st.sampled_from(sorted(FEDERATION_KINDS)))
    return kind, draw(hostile_payloads(kind, REGIONAL))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile=hostile_reports())
def test_a_hostile_report_at_the_central_hub_is_handled_and_the_good_ones_beside_it_are_stored(
    central: FederationWorker, hostile: tuple[MessageKind, bytes]
) -> None:
    kind, payload = hostile
    rejected = central.rejected
    first, second = next(SEQ) * 2, next(SEQ) * 2 + 1
    good = [message(REGIONAL, seq, _transition(seq)) for seq in (first, second)]

    outcomes = central.process_batch([good[0], (uplink_topic(REGIONAL, kind), payload), good[1]])

    assert [outcomes[0].status, outcomes[2].status] == [OutcomeStatus.ACCEPTED] * 2
    assert outcomes[1].status is not OutcomeStatus.KEPT, outcomes[1]
    if outcomes[1].status is OutcomeStatus.REJECTED:
        assert outcomes[1].reason and len(outcomes[1].reason) <= 40  # a bounded label
        assert central.rejected == rejected + 1


def _transition(seq: int) -> AlertChanges:
    return AlertChanges(changes=[alert_change(seq, at=_window(seq))])
