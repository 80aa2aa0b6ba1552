"""Acknowledging and resolving alerts through the API, and the filtered, paginated alert list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry
from tests.hub.write_lock import while_ingest_writes

NOW = T0 + timedelta(minutes=5)
SOUTH = SITE.model_copy(
    update={"district_id": "d-south", "district_name": "South", "school_id": "s-2"}
)
USERS = {
    "admin": (Role.CITY_ADMIN, "city:city-1"),
    "north-ops": (Role.DISTRICT_OPERATOR, "district:d-north"),
    "north-viewer": (Role.VIEWER, "district:d-north"),
}


@pytest.fixture
def client(
    database_url: str, engine: Engine, sessions: sessionmaker[Session], worker: IngestWorker
) -> Iterator[TestClient]:
    """North (s-1) has a level II gas alert (opened T0) and a level IV CO2 alert (T0+10 s);
    south (s-2) has a level II gas alert (T0+1 min)."""
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
    worker.process(*telemetry(seq=3, points={"co2": stats(1200, unit="ppm")}))
    worker.process(*heartbeat("gw-2", seq=1, site=SOUTH), now=T0)
    worker.process(*event("gw-2", seq=2, state=EventState.RAISED, at=T0 + timedelta(minutes=1)))
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    app.dependency_overrides[get_now] = lambda: NOW
    with TestClient(app) as client:
        client.tokens = {  # type: ignore[attr-defined]
            name: make_user(sessions, name, *spec, now=T0) for name, spec in USERS.items()
        }
        yield client


def as_user(client: TestClient, name: str) -> dict[str, str]:
    return bearer(client.tokens[name])  # type: ignore[attr-defined]


def alert_id(client: TestClient, **query: str) -> int:
    body = client.get("/api/v1/alerts", params=query, headers=as_user(client, "admin")).json()
    assert body["count"] == 1, body
    return int(body["data"][0]["id"])


def test_an_operator_acknowledges_then_resolves_an_alert_with_comments(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    gas = alert_id(client, school_id="s-1", level="II")
    ops = as_user(client, "north-ops")

    acked = client.post(f"/api/v1/alerts/{gas}/ack", json={"comment": "on my way"}, headers=ops)
    resolved = client.post(
        f"/api/v1/alerts/{gas}/resolve", json={"comment": "valve closed"}, headers=ops
    )

    assert acked.status_code == resolved.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    body = resolved.json()
    assert (body["state"], body["acknowledged_by"], body["resolved_by"]) == (
        "resolved",
        "north-ops",
        "north-ops",
    )
    assert body["acknowledged_at"] == body["resolved_at"] == "2026-03-02T08:05:00Z"
    assert [
        (c["transition"], c["from_state"], c["to_state"], c["actor"], c["comment"])
        for c in body["changes"]
    ] == [
        ("raise", None, "open", "gateway:gw-1", "value 25 (threshold 20)"),
        ("acknowledge", "open", "acknowledged", "north-ops", "on my way"),
        ("resolve", "acknowledged", "resolved", "north-ops", "valve closed"),
    ]
    with sessions() as session:
        entries, _ = audit.list_entries(session, actor="north-ops")
    assert [(e.action, e.target, e.result, e.detail) for e in reversed(entries)] == [
        ("alert.ack", f"alert:{gas}", "ok", "on my way"),
        ("alert.resolve", f"alert:{gas}", "ok", "valve closed"),
    ]


def test_an_ack_while_ingest_holds_the_write_lock_waits_its_turn(
    client: TestClient, engine: Engine
) -> None:
    gas = alert_id(client, school_id="s-1", level="II")
    ops = as_user(client, "north-ops")

    def ack() -> httpx.Response:
        return client.post(f"/api/v1/alerts/{gas}/ack", headers=ops)

    assert while_ingest_writes(engine, ack).status_code == 200  # not a 500 "database is locked"


def test_ack_needs_no_body_and_a_second_ack_is_a_conflict(client: TestClient) -> None:
    gas = alert_id(client, school_id="s-1", level="II")
    ops = as_user(client, "north-ops")

    assert client.post(f"/api/v1/alerts/{gas}/ack", headers=ops).status_code == 200
    again = client.post(f"/api/v1/alerts/{gas}/ack", headers=ops)

    assert again.status_code == 409
    assert "cannot acknowledge an alert that is acknowledged" in again.json()["detail"]


def test_a_resolved_alert_cannot_be_acknowledged_or_resolved_again(client: TestClient) -> None:
    gas = alert_id(client, school_id="s-1", level="II")
    ops = as_user(client, "north-ops")
    assert client.post(f"/api/v1/alerts/{gas}/resolve", headers=ops).status_code == 200

    assert client.post(f"/api/v1/alerts/{gas}/ack", headers=ops).status_code == 409
    assert client.post(f"/api/v1/alerts/{gas}/resolve", headers=ops).status_code == 409


def test_an_alert_out_of_scope_is_404_exactly_like_an_unknown_one(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    south = alert_id(client, school_id="s-2")
    ops = as_user(client, "north-ops")

    for verb in ("ack", "resolve"):
        out_of_scope = client.post(f"/api/v1/alerts/{south}/{verb}", headers=ops)
        unknown = client.post(f"/api/v1/alerts/999999/{verb}", headers=ops)
        assert out_of_scope.status_code == unknown.status_code == 404
    assert client.get(f"/api/v1/alerts/{south}", headers=ops).status_code == 404
    assert (
        client.get(f"/api/v1/alerts/{south}", headers=as_user(client, "admin")).json()["state"]
        == "open"
    )  # untouched
    with sessions() as session:
        _, refused = audit.list_entries(session, actor="north-ops", result=audit.Result.NOT_FOUND)
    assert refused == 5  # two acks, two resolves and one read


def test_a_viewer_may_read_alerts_but_not_acknowledge_them(client: TestClient) -> None:
    gas = alert_id(client, school_id="s-1", level="II")
    viewer = as_user(client, "north-viewer")

    assert client.get(f"/api/v1/alerts/{gas}", headers=viewer).status_code == 200
    assert client.post(f"/api/v1/alerts/{gas}/ack", headers=viewer).status_code == 403
    assert client.post(f"/api/v1/alerts/{gas}/resolve", headers=viewer).status_code == 403


def test_alerts_show_level_name_colour_occurrences_and_who_they_are_in_front_of(
    client: TestClient,
) -> None:
    gas = alert_id(client, school_id="s-2")

    body = client.get(f"/api/v1/alerts/{gas}", headers=as_user(client, "admin")).json()

    assert body["level"] == {"code": "II", "name": "严重", "colour": "orange"}
    assert (body["occurrences"], body["opened_at"], body["last_seen_at"]) == (
        1,
        "2026-03-02T08:01:00Z",
        "2026-03-02T08:01:00Z",
    )
    assert body["escalated_to"] == "school"


FILTERS: list[tuple[dict[str, str], list[tuple[str, str]]]] = [
    ({"district_id": "d-north"}, [("s-1", "IV"), ("s-1", "II")]),
    ({"district_id": "d-south"}, [("s-2", "II")]),
    ({"level": "II"}, [("s-2", "II"), ("s-1", "II")]),
    ({"state": "open"}, [("s-2", "II"), ("s-1", "IV"), ("s-1", "II")]),
    ({"state": "acknowledged"}, []),
    ({"from": "2026-03-02T08:00:05Z"}, [("s-2", "II"), ("s-1", "IV")]),
    ({"to": "2026-03-02T08:00:05Z"}, [("s-1", "II")]),
    ({"school_id": "s-1", "level": "IV"}, [("s-1", "IV")]),
]


def test_the_alert_list_filters_by_district_level_state_and_time_newest_first(
    client: TestClient,
) -> None:
    for query, expected in FILTERS:
        body = client.get("/api/v1/alerts", params=query, headers=as_user(client, "admin")).json()
        assert [(a["school_id"], a["severity"]) for a in body["data"]] == expected, query
        assert body["count"] == len(expected)


def test_the_alert_list_pages_with_limit_and_offset_and_counts_every_match(
    client: TestClient,
) -> None:
    pages = [
        client.get(
            "/api/v1/alerts",
            params={"limit": 2, "offset": offset},
            headers=as_user(client, "admin"),
        ).json()
        for offset in (0, 2)
    ]
    assert [len(page["data"]) for page in pages] == [2, 1]
    assert {page["count"] for page in pages} == {3}


def test_a_district_operator_lists_only_its_district(client: TestClient) -> None:
    body = client.get("/api/v1/alerts", headers=as_user(client, "north-ops")).json()
    assert {a["school_id"] for a in body["data"]} == {"s-1"}
    assert body["count"] == 2
