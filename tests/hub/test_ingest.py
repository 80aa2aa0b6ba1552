"""IngestWorker.process: each message ends accepted, duplicate or rejected, and stores to match."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import (
    MAX_MESSAGE_BYTES,
    DeviceStatus,
    DistrictKpis,
    EventState,
    KpiSnapshot,
    MessageKind,
    uplink_topic,
)
from cloud_hub.alerts.lifecycle import AlertState
from cloud_hub.db import alerts, devices, telemetry
from cloud_hub.db.models import (
    Alert,
    AlertSource,
    District,
    Gateway,
    LatestValue,
    School,
    SeenSeq,
    TelemetryWindow,
)
from cloud_hub.ingest import dedupe
from cloud_hub.ingest.worker import INGEST_ERRORS, IngestWorker, OutcomeStatus
from tests.hub.builders import T0, device_health, event, heartbeat, state, stats
from tests.hub.builders import message as build
from tests.hub.builders import telemetry as tele


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


CO2_OK = {"co2": stats(640)}


def errors_counted(error_type: str, stage: str = "receiving") -> float:
    return INGEST_ERRORS.labels(error_type=error_type, stage=stage)._value.get()


def test_heartbeat_registers_district_school_gateway_rooms_and_devices(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    outcome = worker.process(
        *heartbeat(
            seq=1,
            devices=[device_health("co2-1"), device_health("lux-1", status=DeviceStatus.OFFLINE)],
        ),
        now=T0,
    )

    assert outcome.status is OutcomeStatus.ACCEPTED
    assert outcome.kind == "health"
    with sessions() as session:
        district = session.get(District, "d-north")
        assert district is not None
        assert (district.name, district.city_id) == ("North District", "city-1")
        school = session.get(School, "s-1")
        assert school is not None and school.name == "No. 1 Primary School"
        gateway = session.get(Gateway, "gw-1")
        assert gateway is not None
        assert gateway.school_id == "s-1"
        assert gateway.last_seen_at == T0
        assert gateway.agent_version == "0.1.0"
        rows = devices.list_devices(session, school_id="s-1")
        assert [(d.key, d.status, d.room.key if d.room else None) for d in rows] == [
            ("co2-1", "online", "r101"),
            ("lux-1", "offline", "r101"),
        ]
        assert rows[1].last_error == "timeout after 2.0 s"
        assert rows[0].room is not None and rows[0].room.name == "Room 101"


def test_telemetry_stores_one_window_row_per_point_and_the_latest_values(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)
    points = {"co2": stats(600, 650, 700, unit="ppm"), "temperature": stats(21.5, 22.0, unit="°C")}

    first = worker.process(*tele(seq=2, points=points))
    second = worker.process(
        *tele(seq=3, points={"co2": stats(720, unit="ppm")}, start=T0 + timedelta(seconds=10))
    )

    assert (first.status, second.status) == (OutcomeStatus.ACCEPTED, OutcomeStatus.ACCEPTED)
    with sessions() as session:
        device = devices.find_device(session, gateway_id="gw-1", key="co2-1")
        assert device is not None
        windows = telemetry.windows_of(session, device_id=device.id)
        assert [(w.point, w.count, w.min, w.max, w.mean, w.last) for w in windows] == [
            ("co2", 3, 600, 700, 650, 700),
            ("temperature", 2, 21.5, 22.0, 21.75, 22.0),
            ("co2", 1, 720, 720, 720, 720),
        ]
        latest = telemetry.latest_values(session, device_ids=[device.id])[device.id]
        assert {v.point: (v.value, v.unit, v.at) for v in latest} == {
            "co2": (720, "ppm", T0 + timedelta(seconds=20)),
            "temperature": (22.0, "°C", T0 + timedelta(seconds=10)),
        }
        assert device.last_ok_at == T0 + timedelta(seconds=20)


def test_an_older_window_replayed_late_does_not_move_latest_values_back(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*tele(seq=5, points={"co2": stats(800)}, start=T0 + timedelta(seconds=60)))
    worker.process(*tele(seq=4, points={"co2": stats(500)}, start=T0))

    with sessions() as session:
        (value,) = session.scalars(select(LatestValue)).all()
        assert (value.value, value.at) == (800, T0 + timedelta(seconds=70))
    assert count(sessions, TelemetryWindow) == 2


def test_telemetry_from_an_unknown_device_registers_it_from_the_message(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    outcome = worker.process(
        *tele("gw-2", seq=1, device="co2-9", room="lab-2", points={"co2": stats(500)})
    )

    assert outcome.status is OutcomeStatus.ACCEPTED
    with sessions() as session:
        device = devices.find_device(session, gateway_id="gw-2", key="co2-9")
        assert device is not None
        assert (device.profile, device.protocol, device.status) == (
            "sensecap_s_co2_03",
            "modbus",
            "unknown",
        )
        assert device.room is not None and device.room.key == "lab-2"


def test_the_same_node_and_seq_twice_is_stored_once(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    message = tele(seq=7, points={"co2": stats(640)})

    first = worker.process(*message)
    second = worker.process(*message)

    assert first.status is OutcomeStatus.ACCEPTED
    assert second.status is OutcomeStatus.DUPLICATE
    assert (worker.accepted, worker.duplicates, worker.rejected) == (1, 1, 0)
    assert count(sessions, TelemetryWindow) == 1
    assert count(sessions, SeenSeq) == 1


def test_the_same_seq_from_another_node_is_not_a_duplicate(worker: IngestWorker) -> None:
    assert (
        worker.process(*tele("gw-1", seq=1, points={"co2": stats(1)})).status
        is OutcomeStatus.ACCEPTED
    )
    assert (
        worker.process(*tele("gw-2", seq=1, points={"co2": stats(1)})).status
        is OutcomeStatus.ACCEPTED
    )


def test_a_replaced_outbox_starts_a_new_epoch_whose_seqs_are_stored_not_deduplicated(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    old = [
        tele(seq=seq, points=CO2_OK, start=T0 + timedelta(seconds=10 * seq), epoch="old")
        for seq in range(3)
    ]
    new = [
        tele(seq=seq, points=CO2_OK, start=T0 + timedelta(seconds=100 + 10 * seq), epoch="new")
        for seq in range(3)
    ]

    outcomes = worker.process_batch([*old, *new])

    assert [o.status for o in outcomes] == [OutcomeStatus.ACCEPTED] * 6
    assert count(sessions, TelemetryWindow) == 6


def test_claims_older_than_the_retention_are_pruned(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*tele(seq=1, points={"co2": stats(1)}), now=T0)
    worker.process(*tele(seq=2, points={"co2": stats(1)}), now=T0 + timedelta(days=8))

    with sessions() as session, session.begin():
        assert dedupe.prune(session, older_than=T0 + timedelta(days=1)) == 1
    with sessions() as session:
        assert list(session.scalars(select(SeenSeq.seq))) == [2]


def test_a_repeated_state_message_is_applied_not_deduplicated(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    assert worker.process(*state(seq=3, online=True)).status is OutcomeStatus.ACCEPTED
    assert worker.process(*state(seq=3, online=False)).status is OutcomeStatus.ACCEPTED

    with sessions() as session:
        gateway = session.get(Gateway, "gw-1")
        assert gateway is not None and gateway.online is False


GOOD = tele(seq=100, points={"co2": stats(500)})
TELEMETRY_TOPIC = uplink_topic("gw-1", MessageKind.TELEMETRY)
DISTRICT_KPIS = DistrictKpis(district_id="d1", city_id="c1", schools=1, figures=[])


def _envelope_with(**changes: object) -> bytes:
    raw = orjson.loads(GOOD[1])
    raw.update(changes)
    return orjson.dumps(raw)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        pytest.param(TELEMETRY_TOPIC, b"{not json", "invalid_json", id="malformed-json"),
        pytest.param(TELEMETRY_TOPIC, b"x" * (MAX_MESSAGE_BYTES + 1), "too_large", id="oversized"),
        pytest.param(
            TELEMETRY_TOPIC, _envelope_with(v=2), "unsupported_version", id="wrong-version"
        ),
        pytest.param(
            uplink_topic("gw-2", MessageKind.TELEMETRY),
            GOOD[1],
            "node_mismatch",
            id="node-mismatch",
        ),
        pytest.param(
            uplink_topic("gw-1", MessageKind.HEALTH), GOOD[1], "kind_mismatch", id="kind-mismatch"
        ),
        pytest.param("campus/v1/gw-1/down/cmd", GOOD[1], "invalid_topic", id="downlink-topic"),
        pytest.param("campus/v1/GW 1/up/telemetry", GOOD[1], "invalid_topic", id="bad-node-id"),
        pytest.param(
            TELEMETRY_TOPIC, _envelope_with(body={"device": "x"}), "invalid_body", id="bad-body"
        ),
        pytest.param(
            *build("gw-1", 7, KpiSnapshot(at=T0, districts=[DISTRICT_KPIS])),
            "unexpected_kind",
            id="federation-kind-from-a-gateway",
        ),
    ],
)
def test_bad_input_is_rejected_with_its_reason_and_the_next_good_message_is_accepted(
    worker: IngestWorker, sessions: sessionmaker[Session], topic: str, payload: bytes, reason: str
) -> None:
    before = errors_counted(reason)

    outcome = worker.process(topic, payload)
    good = worker.process(*GOOD)

    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.reason == reason
    assert worker.rejections == {reason: 1}
    assert errors_counted(reason) == before + 1
    assert good.status is OutcomeStatus.ACCEPTED
    assert count(sessions, TelemetryWindow) == 1


def test_telemetry_naming_an_unknown_profile_is_rejected_and_stores_nothing(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    before = errors_counted("unknown_profile", "processing")

    outcome = worker.process(*tele(seq=1, profile="cold_room_v9", points={"t": stats(4)}))

    assert (outcome.status, outcome.reason) == (OutcomeStatus.REJECTED, "unknown_profile")
    assert errors_counted("unknown_profile", "processing") == before + 1
    assert count(sessions, SeenSeq) == 0  # not claimed: a fixed hub may accept the resend
    assert count(sessions, Gateway) == 0


def _windows(values: list[float]) -> list[tuple[str, bytes]]:
    return [
        tele(seq=10 + i, points={"co2": stats(v, unit="ppm")}, start=T0 + timedelta(seconds=10 * i))
        for i, v in enumerate(values)
    ]


def test_a_level_iv_threshold_alert_opens_once_while_the_rule_holds_and_resolves_after(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)

    for message in _windows([900, 1200, 1300, 950]):
        assert worker.process(*message).status is OutcomeStatus.ACCEPTED

    with sessions() as session:
        rows, total = alerts.list_alerts(session)
        hygiene = [a for a in rows if a.rule == "co2_above_hygiene_limit"]
        assert len(hygiene) == 1
        alert = hygiene[0]
        assert alert.state == AlertState.RESOLVED.value  # level IV resolves itself
        assert (alert.resolved_by, alert.resolved_at) == ("hub", T0 + timedelta(seconds=40))
        assert alert.source == AlertSource.HUB.value
        assert (alert.occurrences, alert.last_seen_at) == (1, T0 + timedelta(seconds=20))
        assert (alert.school_id, alert.device, alert.severity) == ("s-1", "co2-1", "IV")
        assert (alert.value, alert.threshold) == (1200, 1000)
        assert alert.opened_at == T0 + timedelta(seconds=20)
        assert alert.cleared_at == T0 + timedelta(seconds=40)
        assert "GB/T 18883" in alert.standard
        assert total == 1  # the 1500 ppm design-limit rule never fired


def test_a_self_resolving_threshold_alert_opens_anew_after_it_cleared(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    for message in _windows([1200, 900, 1100]):
        worker.process(*message)

    with sessions() as session:
        states = sorted(a.state for a in session.scalars(select(Alert)))
    assert states == ["open", "resolved"]


def test_edge_events_open_a_level_ii_alert_count_repeats_and_clear_without_resolving(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1), now=T0)
    raised = worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
    again = worker.process(*event(seq=3, state=EventState.RAISED, at=T0 + timedelta(seconds=5)))

    with sessions() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.state, alert.source, alert.school_id) == ("open", "edge", "s-1")
        assert (alert.occurrences, alert.last_seen_at) == (2, T0 + timedelta(seconds=5))

    worker.process(*event(seq=4, state=EventState.CLEARED, at=T0 + timedelta(minutes=1)))

    assert (raised.status, again.status) == (OutcomeStatus.ACCEPTED, OutcomeStatus.ACCEPTED)
    with sessions() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.state == "open"  # level II waits for a person to resolve it
        assert alert.cleared_at == T0 + timedelta(minutes=1)


def test_an_older_heartbeat_replayed_late_does_not_overwrite_newer_device_states(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    newer = heartbeat(seq=9, devices=[device_health("co2-1")], sent_at=T0 + timedelta(minutes=5))
    older = heartbeat(
        seq=8, devices=[device_health("co2-1", status=DeviceStatus.OFFLINE)], sent_at=T0
    )
    worker.process(*newer, now=T0 + timedelta(minutes=5))
    worker.process(*older, now=T0 + timedelta(minutes=6))

    with sessions() as session:
        device = devices.find_device(session, gateway_id="gw-1", key="co2-1")
        gateway = session.get(Gateway, "gw-1")
        assert device is not None and device.status == "online"
        assert gateway is not None and gateway.last_seen_at == T0 + timedelta(minutes=6)


def test_an_alert_raised_before_the_first_heartbeat_gets_its_school_from_it(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    for message in _windows([1200]):
        worker.process(*message)
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)

    with sessions() as session:
        rows, total = alerts.list_alerts(session, where=alerts.AlertFilter(school_id="s-1"))
    assert total == 1
    assert [(a.rule, a.school_id) for a in rows] == [("co2_above_hygiene_limit", "s-1")]
