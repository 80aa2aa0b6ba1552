"""At a central hub the ordinary read routes (schools, districts, KPIs, alerts) answer from what
the regional hubs forwarded, and agree with the regional hub's own answers; what only a regional
hub keeps (devices, series, gateways, commands, an alert's record) is a 404 naming the regional
hub to ask. The regional hub is the KPI tests' simulated city (``client``: its own API), filled
into a central database by ``city_client`` (tests/hub/test_federation.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import Severity
from cloud_hub.alerts.lifecycle import Transition
from cloud_hub.auth.roles import Role
from cloud_hub.db import alerts
from cloud_hub.db.alerts import Alarm, AlertKey
from cloud_hub.db.models import Alert, AlertSource
from cloud_hub.federation.ingest import FederationWorker
from device_profiles.schema import Profile
from tests.auth_support import bearer, make_user
from tests.hub.test_federation import REGIONAL, central, city_client, deliver, forwarder
from tests.hub.test_kpis import NOW, City, client
from tests.hub.test_kpis import city as city

__all__ = ["central", "city_client", "client"]  # fixtures this module uses


def admin(sessions: sessionmaker[Session], name: str = "city") -> dict[str, str]:
    return bearer(make_user(sessions, name, Role.CITY_ADMIN, "city:city-1", now=NOW))


def schools_seen(body: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        s["id"]: (s["status"], s["devices"], s["district"]["id"], s["city_id"])
        for s in body["data"]
    }


@dataclass
class Tiers:
    """The central hub's API and the regional hub's, each with a city administrator's token."""

    central: TestClient
    regional: TestClient
    at_central: dict[str, str]
    at_regional: dict[str, str]


@pytest.fixture
def tiers(
    city_client: TestClient,
    client: TestClient,
    central: sessionmaker[Session],
    sessions: sessionmaker[Session],
) -> Tiers:
    return Tiers(city_client, client, admin(central), admin(sessions))


def test_a_central_hubs_schools_and_districts_are_what_the_regional_hub_says(
    tiers: Tiers,
) -> None:
    city_client, client = tiers.central, tiers.regional
    at_central, at_regional = tiers.at_central, tiers.at_regional

    schools = city_client.get("/api/v1/schools", headers=at_central).json()
    truth = client.get("/api/v1/schools", headers=at_regional).json()
    districts = city_client.get("/api/v1/districts", headers=at_central).json()
    regional_districts = client.get("/api/v1/districts", headers=at_regional).json()
    offline = city_client.get("/api/v1/schools?status=offline", headers=at_central).json()
    d2 = city_client.get("/api/v1/schools?district_id=d2", headers=at_central).json()

    assert schools["count"] == truth["count"] == 12
    assert schools_seen(schools) == schools_seen(truth)
    assert {s["status"] for s in schools["data"]} == {"online", "degraded", "offline"}
    s01 = schools["data"][0]
    assert s01["reported_by"] == {
        "regional_hub": REGIONAL,
        "regional_hub_online": None,  # it never published a retained state here
        "reported_at": "2026-03-02T10:00:00Z",
        "last_seen_at": s01["reported_by"]["last_seen_at"],
        "gateways": 1,
        "gateways_online": 1,
    }
    assert s01["gateway"] is None  # gateway ids are kept at the regional hub
    assert [d["schools"] for d in districts["data"]] == [
        d["schools"] for d in regional_districts["data"]
    ]
    assert {d["regional_hub"] for d in districts["data"]} == {REGIONAL}
    assert [s["id"] for s in offline["data"]] == ["s12"]
    assert [s["id"] for s in d2["data"]] == ["s05", "s06", "s07", "s08"]


def test_a_central_hubs_kpis_are_the_city_snapshots_the_city_route_and_cli_use(
    tiers: Tiers,
) -> None:
    city_client, client, at_central = tiers.central, tiers.regional, tiers.at_central
    city_query = {"level": "city", "id": "city-1"}

    kpis = city_client.get("/api/v1/kpis", params=city_query, headers=at_central)
    city_route = city_client.get("/api/v1/city/kpis", params=city_query, headers=at_central)
    own = city_client.get("/api/v1/kpis", headers=at_central)
    truth = client.get("/api/v1/kpis", params=city_query, headers=tiers.at_regional)
    csv = city_client.get("/api/v1/kpis", params={**city_query, "format": "csv"},
                          headers=at_central)  # fmt: skip

    assert kpis.status_code == 200 and kpis.json() == city_route.json() == own.json()
    values = {k["kpi"]: k["value"] for k in kpis.json()["kpis"]}
    assert values == pytest.approx({k["kpi"]: k["value"] for k in truth.json()["kpis"]})
    assert values["campus_iot_coverage"] == pytest.approx(100 * 11 / 12, abs=0.01)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")


def test_a_central_hub_answers_by_scope(
    city_client: TestClient, central: sessionmaker[Session]
) -> None:
    d2 = bearer(make_user(central, "d2", Role.VIEWER, "district:d2", now=NOW))
    s05 = bearer(make_user(central, "s05", Role.SCHOOL_TECHNICIAN, "school:s05", now=NOW))

    d2_schools = city_client.get("/api/v1/schools", headers=d2).json()
    d2_other = city_client.get("/api/v1/schools?district_id=d1", headers=d2).json()
    d2_districts = city_client.get("/api/v1/districts", headers=d2).json()
    d2_kpis = city_client.get("/api/v1/kpis", headers=d2)
    d2_city = city_client.get("/api/v1/kpis", params={"level": "city", "id": "city-1"}, headers=d2)
    d2_d1 = city_client.get("/api/v1/kpis", params={"level": "district", "id": "d1"}, headers=d2)
    s05_schools = city_client.get("/api/v1/schools", headers=s05).json()
    s05_kpis = city_client.get("/api/v1/kpis", headers=s05)
    anonymous = [city_client.get(p).status_code for p in ("/api/v1/schools", "/api/v1/kpis")]

    assert [s["id"] for s in d2_schools["data"]] == ["s05", "s06", "s07", "s08"]
    assert d2_other == {"data": [], "count": 0}
    assert [d["id"] for d in d2_districts["data"]] == ["d2"]
    assert (d2_kpis.status_code, d2_kpis.json()["level"], d2_kpis.json()["schools"]) == (
        200, "district", 4,
    )  # fmt: skip
    assert (d2_city.status_code, d2_d1.status_code) == (403, 404)
    assert [s["id"] for s in s05_schools["data"]] == ["s05"]
    assert s05_kpis.status_code == 404 and REGIONAL in s05_kpis.json()["detail"]
    assert anonymous == [401, 401]


@pytest.fixture
def raised(city: City, sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Two alerts at the regional hub before it forwards: a gas alert at s01 (II) and a gateway
    of s06 offline (III, the gateway's own)."""
    gas = Alarm(
        key=AlertKey(gateway_id="gw-s01", device="lab1-gas", rule="gas_high"),
        source=AlertSource.EDGE,
        point="concentration",
        severity=Severity.II,
        at=NOW - timedelta(minutes=5),
        value=30.0,
        threshold=25.0,
        message="可燃气体浓度超限",
    )
    offline = replace(
        gas,
        key=AlertKey(gateway_id="gw-s06", device="", rule="gateway_offline"),
        severity=Severity.III,
        at=NOW - timedelta(minutes=2),
        message="",
    )
    with sessions.begin() as session:
        first = alerts.raise_alert(session, alarm=gas, actor="gateway:gw-s01").alert_id
        second = alerts.raise_alert(session, alarm=offline, actor="hub").alert_id
    return first, second


def active(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(a["severity"], a["state"], a["school_id"], a["device"] or a["gateway_id"])
            for a in body["data"]]  # fmt: skip


def test_a_central_hubs_alerts_are_those_the_transitions_say_are_not_over(
    raised: tuple[int, int],
    tiers: Tiers,
    central: sessionmaker[Session],
    sessions: sessionmaker[Session],
    profiles: dict[str, Profile],
    tmp_path: Path,
) -> None:
    gas, _ = raised
    city_client, client = tiers.central, tiers.regional
    at_central, at_regional = tiers.at_central, tiers.at_regional
    d2 = bearer(make_user(central, "d2", Role.VIEWER, "district:d2", now=NOW))
    before = city_client.get("/api/v1/alerts?state=active", headers=at_central).json()
    truth = client.get("/api/v1/alerts?state=active", headers=at_regional).json()
    with sessions.begin() as session:
        alert = session.get_one(Alert, gas)
        alerts.apply(session, alert=alert, transition=Transition.RESOLVE, actor="li", at=NOW)
    later = forwarder(sessions, profiles, tmp_path / "later.db", at=NOW + timedelta(minutes=1))
    later.collect()
    deliver(later, FederationWorker(central))

    after = city_client.get("/api/v1/alerts?state=active", headers=at_central).json()
    resolved = city_client.get("/api/v1/alerts?state=resolved", headers=at_central).json()
    level_ii = city_client.get("/api/v1/alerts?level=II", headers=at_central).json()
    in_d2 = city_client.get("/api/v1/alerts", headers=d2).json()
    districts = city_client.get("/api/v1/districts", headers=at_central).json()

    assert active(before) == [(*a[:3], a[3]) for a in active(truth)]  # newest first, both
    assert before["data"][1]["id"] == f"{REGIONAL}:{gas}"
    assert before["data"][1]["level"]["colour"] == "orange"
    assert active(after) == [("III", "open", "s06", "gw-s06")]
    assert [a["alert_id"] for a in resolved["data"]] == [gas]
    assert level_ii["count"] == 1 and level_ii["data"][0]["state"] == "resolved"
    assert active(in_d2) == [("III", "open", "s06", "gw-s06")]
    assert {d["id"]: d["active_alerts"]["III"] for d in districts["data"]} == {
        "d1": 0, "d2": 1, "d3": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/devices?school_id=s01"),
        ("GET", "/api/v1/devices/lux/series?gateway_id=gw-s01&point=illuminance"),
        ("POST", "/api/v1/devices/dali/commands?gateway_id=gw-s01"),
        ("POST", "/api/v1/gateways/gw-s01/devices/dali/approve"),
        ("GET", "/api/v1/gateways"),
        ("GET", "/api/v1/schools/s01"),
        ("GET", "/api/v1/kpis?level=school&id=s01"),
    ],
)
def test_what_only_a_regional_hub_keeps_is_a_404_naming_the_regional_hub_to_ask(
    city_client: TestClient, central: sessionmaker[Session], method: str, path: str
) -> None:
    response = city_client.request(method, path, headers=admin(central), json={"action": "on"})
    anonymous = city_client.request(method, path)

    assert response.status_code == 404, response.text
    detail = response.json()["detail"]
    assert detail.startswith("not at this tier") and REGIONAL in detail
    assert anonymous.status_code == 401


def test_a_central_hubs_alert_record_and_actions_are_at_its_regional_hub(
    raised: tuple[int, int], city_client: TestClient, central: sessionmaker[Session]
) -> None:
    gas, gateway = raised
    d2 = bearer(make_user(central, "d2", Role.DISTRICT_OPERATOR, "district:d2", now=NOW))

    record = city_client.get(f"/api/v1/alerts/{gas}", headers=admin(central))
    ack = city_client.post(f"/api/v1/alerts/{gateway}/ack", headers=d2)
    out_of_scope = city_client.post(f"/api/v1/alerts/{gas}/resolve", headers=d2)

    assert record.status_code == ack.status_code == 404
    assert REGIONAL in record.json()["detail"] and REGIONAL in ack.json()["detail"]
    assert out_of_scope.status_code == 404
    assert out_of_scope.json()["detail"] == f"alert {gas} not found"


def test_the_tier_route_says_which_tier_a_hub_is(
    tiers: Tiers, central: sessionmaker[Session]
) -> None:
    d2 = bearer(make_user(central, "d2", Role.VIEWER, "district:d2", now=NOW))

    at_central = tiers.central.get("/api/v1/tier", headers=tiers.at_central).json()
    in_d2 = tiers.central.get("/api/v1/tier", headers=d2).json()
    at_regional = tiers.regional.get("/api/v1/tier", headers=tiers.at_regional).json()

    assert at_central == {
        "role": "central", "schools": 12, "regional_hubs": [REGIONAL], "regional_hubs_offline": 0,
    }  # fmt: skip
    assert in_d2["schools"] == 4
    assert at_regional == {
        "role": "regional", "schools": 12, "regional_hubs": [], "regional_hubs_offline": 0,
    }  # fmt: skip
