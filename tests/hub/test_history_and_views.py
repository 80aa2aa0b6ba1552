"""History and views: a device point's downsampled series, districts with their counts, and one
school with its rooms, devices, latest values and active alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import DeviceStatus, EventState
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from cloud_hub.settings import HubSettings
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry

HOUR = timedelta(hours=1)
NOW = T0 + HOUR
SOUTH = SITE.model_copy(
    update={
        "district_id": "d-south",
        "district_name": "South",
        "school_id": "s-2",
        "school_name": "Two",
    }
)


def co2_at(i: int) -> float:
    """One window every 10 s for an hour: 400 ppm rising by 1 ppm per window."""
    return 400.0 + i


@pytest.fixture
def client(
    database_url: str, engine: Engine, sessions: sessionmaker[Session], worker: IngestWorker
) -> Iterator[TestClient]:
    """North school s-1 (gw-1): co2-1 with an hour of windows and lux-1 offline, a level II gas
    alert; south school s-2 (gw-2), offline since T0, has a device also called co2-1."""
    worker.process(
        *heartbeat(
            seq=1,
            devices=[device_health("co2-1"), device_health("lux-1", status=DeviceStatus.OFFLINE)],
            sent_at=NOW,
        ),
        now=NOW,
    )
    windows = [
        telemetry(
            seq=10 + i,
            points={"co2": stats(co2_at(i), unit="ppm")},
            start=T0 + i * timedelta(seconds=10),
        )
        for i in range(360)
    ]
    assert {o.status for o in worker.process_batch(windows, now=NOW)} == {OutcomeStatus.ACCEPTED}
    worker.process(*event(seq=5, state=EventState.RAISED, at=T0), now=NOW)
    worker.process(*heartbeat("gw-2", seq=1, site=SOUTH, devices=[device_health("co2-1")]), now=T0)
    worker.process(*telemetry("gw-2", seq=2, points={"co2": stats(999)}), now=T0)
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    app.dependency_overrides[get_now] = lambda: NOW
    with TestClient(app) as client:
        client.tokens = {  # type: ignore[attr-defined]
            "admin": make_user(sessions, "admin", Role.CITY_ADMIN, "city:city-1", now=NOW),
            "north-ops": make_user(
                sessions, "north-ops", Role.DISTRICT_OPERATOR, "district:d-north", now=NOW
            ),
        }
        yield client


def as_user(client: TestClient, name: str) -> dict[str, str]:
    return bearer(client.tokens[name])  # type: ignore[attr-defined]


def test_a_series_is_downsampled_to_the_requested_buckets_with_min_max_and_mean(
    client: TestClient,
) -> None:
    response = client.get(
        "/api/v1/devices/co2-1/series",
        params={
            "point": "co2",
            "from": "2026-03-02T08:00:00Z",
            "to": "2026-03-02T09:00:00Z",
            "buckets": 6,
        },
        headers=as_user(client, "north-ops"),
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["device"], body["gateway_id"], body["unit"], body["bucket_s"]) == (
        "co2-1",
        "gw-1",
        "ppm",
        600.0,
    )
    assert (body["from"], body["to"]) == ("2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z")
    assert [b["t"] for b in body["data"]] == [
        f"2026-03-02T08:{minute:02d}:00Z" for minute in range(0, 60, 10)
    ]
    for n, bucket in enumerate(body["data"]):  # 60 windows per bucket, 1 sample each
        first, last = co2_at(60 * n), co2_at(60 * n + 59)
        assert (bucket["min"], bucket["max"], bucket["count"]) == (first, last, 60)
        assert bucket["mean"] == pytest.approx((first + last) / 2)


def test_a_series_defaults_to_the_last_24_hours_bucketed_from_its_first_window(
    client: TestClient,
) -> None:
    body = client.get(
        "/api/v1/devices/co2-1/series",
        params={"point": "co2", "buckets": 24},
        headers=as_user(client, "north-ops"),
    ).json()

    assert body["from"] == "2026-03-01T09:00:00Z"
    # the buckets begin at the first window, an hour ago: 24 of 150 s, not one of 3600 s
    assert (len(body["data"]), body["bucket_s"]) == (24, 150.0)
    assert body["data"][0]["t"] == "2026-03-02T08:00:00Z"
    assert sum(b["count"] for b in body["data"]) == 360


def test_a_device_id_on_several_gateways_needs_the_gateway_and_scope_hides_the_others(
    client: TestClient,
) -> None:
    url = "/api/v1/devices/co2-1/series?point=co2"

    ambiguous = client.get(url, headers=as_user(client, "admin"))
    named = client.get(
        f"{url}&gateway_id=gw-2&from=2026-03-02T07:00:00Z", headers=as_user(client, "admin")
    )
    north_only = client.get(url, headers=as_user(client, "north-ops"))

    assert ambiguous.status_code == 409 and "gateway_id" in ambiguous.json()["detail"]
    assert [b["max"] for b in named.json()["data"]] == [999.0]
    assert north_only.json()["gateway_id"] == "gw-1"
    south = client.get(f"{url}&gateway_id=gw-2", headers=as_user(client, "north-ops"))
    unknown = client.get("/api/v1/devices/nope/series?point=co2", headers=as_user(client, "admin"))
    assert south.status_code == unknown.status_code == 404


BAD_SERIES_QUERIES = [
    "point=co2&from=2026-03-02T09:00:00Z&to=2026-03-02T08:00:00Z",  # backwards
    "point=co2&from=2024-01-01T00:00:00Z&to=2026-03-02T08:00:00Z",  # over 366 days
    "point=co2&buckets=0",
    "point=co2&from=2026-03-02T08:00:00",  # no timezone
    "point=%27%3B--",
    "buckets=10",  # no point
]


def test_a_series_refuses_a_bad_range_or_point_with_422(client: TestClient) -> None:
    for query in BAD_SERIES_QUERIES:
        url = f"/api/v1/devices/co2-1/series?{query}"
        assert client.get(url, headers=as_user(client, "north-ops")).status_code == 422, query


def test_districts_count_schools_by_status_and_active_alerts_by_level(client: TestClient) -> None:
    body = client.get("/api/v1/districts", headers=as_user(client, "admin")).json()

    assert body == {
        "count": 2,
        "data": [
            {
                "id": "d-north",
                "name": "North District",
                "city_id": "city-1",
                "schools": {"total": 1, "online": 0, "degraded": 1, "offline": 0},
                "active_alerts": {"I": 0, "II": 1, "III": 0, "IV": 0},
            },
            {
                "id": "d-south",
                "name": "South",
                "city_id": "city-1",
                "schools": {"total": 1, "online": 0, "degraded": 0, "offline": 1},
                "active_alerts": {"I": 0, "II": 0, "III": 0, "IV": 0},
            },
        ],
    }
    north = client.get("/api/v1/districts", headers=as_user(client, "north-ops")).json()
    assert [d["id"] for d in north["data"]] == ["d-north"]


def test_a_school_shows_its_rooms_devices_latest_values_completeness_and_active_alerts(
    client: TestClient,
) -> None:
    body = client.get("/api/v1/schools/s-1", headers=as_user(client, "north-ops")).json()

    assert body["status"] == "degraded"
    (room,) = body["rooms"]
    assert (room["id"], room["name"]) == ("r101", "Room 101")
    devices = {d["id"]: d for d in room["devices"]}
    assert devices["co2-1"]["values"]["co2"] == {
        "value": co2_at(359),
        "unit": "ppm",
        "at": "2026-03-02T09:00:00Z",
    }
    assert devices["lux-1"]["status"] == "offline"
    assert devices["co2-1"]["completeness_24h"] == 1.0  # every 10 s window of the hour
    assert devices["lux-1"]["completeness_24h"] is None  # no windows at all
    assert [(a["rule"], a["state"], a["level"]["colour"]) for a in body["active_alerts"]] == [
        ("gas_above_alarm_1", "open", "orange")
    ]
    assert (
        client.get("/api/v1/schools/s-2", headers=as_user(client, "north-ops")).status_code == 404
    )


def test_completeness_counts_the_windows_missing_in_a_gap(
    client: TestClient, worker: IngestWorker
) -> None:
    """gw-2's co2-1 sent one 10 s window at 08:00; by 09:00 it should have sent 360."""
    body = client.get("/api/v1/devices?school_id=s-2", headers=as_user(client, "admin")).json()

    (device,) = body["data"]
    assert device["completeness_24h"] == pytest.approx(10 / 3600, abs=1e-4)
