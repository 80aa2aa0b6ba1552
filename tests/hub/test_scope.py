"""Tier-scoped reads: every route shows a district operator its district, a technician its school,
and answers 404 (not 403) for what is out of scope, so ids do not leak."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.db.models import Alert
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry

NOW = T0 + timedelta(seconds=5)
SOUTH = SITE.model_copy(
    update={"district_id": "d-south", "district_name": "South", "school_id": "s-2"}
)
OTHER_CITY = SITE.model_copy(
    update={"city_id": "city-2", "district_id": "d-far", "school_id": "s-9"}
)
#: words that only the south district's (or another city's) data contains
SOUTH_MARKERS = ("s-2", "gw-2", "d-south", "South", "s-9", "gw-9", "d-far")

#: the event stream never ends by itself: its scope is tested in tests/hub/test_stream.py
ENDLESS = "/api/v1/stream"

USERS = {
    "admin": (Role.CITY_ADMIN, "city:city-1"),
    "north-ops": (Role.DISTRICT_OPERATOR, "district:d-north"),
    "south-ops": (Role.DISTRICT_OPERATOR, "district:d-south"),
    "s1-tech": (Role.SCHOOL_TECHNICIAN, "school:s-1"),
    "north-viewer": (Role.VIEWER, "district:d-north"),
}


@pytest.fixture
def app(
    database_url: str, engine: Engine, sessions: sessionmaker[Session], worker: IngestWorker
) -> FastAPI:
    """Three schools with a device and an active alert each: s-1 (north), s-2 (south), s-9 (in
    another city)."""
    for node, site in (("gw-1", SITE), ("gw-2", SOUTH), ("gw-9", OTHER_CITY)):
        worker.process(*heartbeat(node, seq=1, site=site, devices=[device_health()]), now=T0)
        worker.process(*telemetry(node, seq=2, points={"co2": stats(1500, unit="ppm")}))
        worker.process(*event(node, seq=3, state=EventState.RAISED))
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    app.dependency_overrides[get_now] = lambda: NOW
    return app


@pytest.fixture
def tokens(app: FastAPI, sessions: sessionmaker[Session]) -> dict[str, str]:
    return {name: make_user(sessions, name, *spec, now=T0) for name, spec in USERS.items()}


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def read_routes(app: FastAPI, *, south_alert: int) -> list[str]:
    """Every GET route of the API with its ids and query filters pointed at the south district."""
    urls = []
    for path, methods in app.openapi()["paths"].items():
        if "get" not in methods or not path.startswith("/api/"):
            continue
        if path == ENDLESS:
            continue
        query_params = [p for p in methods["get"].get("parameters", []) if p["in"] == "query"]
        params = {p["name"] for p in query_params}
        required = "".join(f"&{p['name']}=co2" for p in query_params if p.get("required"))
        query = "&".join(
            f"{name}={value}"
            for name, value in (
                ("school_id", "s-2"),
                ("district_id", "d-south"),
                ("gateway_id", "gw-2"),
            )
            if name in params
        )
        path = (
            path.replace("{school_id}", "s-2")
            .replace("{alert_id}", str(south_alert))
            .replace("{device_id}", "co2-1")
        )
        urls.append(path + (f"?{query}{required}" if query else ""))
        if query:
            urls.append(path + ("?" + required[1:] if required else ""))
    return urls


@pytest.mark.parametrize("user", ["north-ops", "s1-tech", "north-viewer"])
def test_no_read_route_shows_a_scoped_user_anything_of_another_district(
    app: FastAPI,
    client: TestClient,
    sessions: sessionmaker[Session],
    tokens: dict[str, str],
    user: str,
) -> None:
    with sessions() as session:
        south_alert = session.scalar(select(func.min(Alert.id)).where(Alert.gateway_id == "gw-2"))
    assert south_alert is not None
    routes = read_routes(app, south_alert=south_alert)
    assert "/api/v1/schools/s-2" in routes and f"/api/v1/alerts/{south_alert}" in routes
    assert "/api/v1/alerts?school_id=s-2&district_id=d-south" in routes

    for url in routes:
        response = client.get(url, headers=bearer(tokens[user]))
        assert response.status_code in (200, 403, 404), (url, response.status_code)
        echoed = response.text if response.status_code == 200 else ""  # a 404 names what was asked
        leaked = [marker for marker in SOUTH_MARKERS if marker in echoed]
        assert not leaked, f"{user} GET {url} leaked {leaked}: {response.text[:300]}"


def test_out_of_scope_school_is_404_exactly_like_an_unknown_one(
    client: TestClient, tokens: dict[str, str]
) -> None:
    ops = bearer(tokens["north-ops"])

    south = client.get("/api/v1/schools/s-2", headers=ops)
    unknown = client.get("/api/v1/schools/s-404", headers=ops)

    assert south.status_code == unknown.status_code == 404
    assert south.json()["detail"].replace("s-2", "X") == unknown.json()["detail"].replace(
        "s-404", "X"
    )
    assert client.get("/api/v1/schools/s-1", headers=ops).status_code == 200
    admin = bearer(tokens["admin"])
    noted = client.get("/api/v1/audit", params={"result": "not_found"}, headers=admin).json()
    assert [(e["actor"], e["target"]) for e in noted["data"]] == [
        ("north-ops", "GET /api/v1/schools/s-404"),
        ("north-ops", "GET /api/v1/schools/s-2"),
    ]


@pytest.mark.parametrize(
    ("user", "schools", "alerts"),
    [
        ("admin", ["s-1", "s-2"], 4),  # its city only: s-9 is in city-2
        ("north-ops", ["s-1"], 2),
        ("s1-tech", ["s-1"], 2),
        ("north-viewer", ["s-1"], 2),
    ],
)
def test_each_role_sees_exactly_its_tier(
    client: TestClient, tokens: dict[str, str], user: str, schools: list[str], alerts: int
) -> None:
    headers = bearer(tokens[user])

    listed = client.get("/api/v1/schools", headers=headers).json()
    devices = client.get("/api/v1/devices", headers=headers).json()
    active = client.get("/api/v1/alerts", headers=headers).json()

    assert [s["id"] for s in listed["data"]] == schools
    assert sorted({d["school_id"] for d in devices["data"]}) == schools
    assert active["count"] == alerts == len(active["data"])
    assert {a["school_id"] for a in active["data"]} == set(schools)


#: ids of the north district's things, put in every path placeholder by the attack tests below
NORTH_IDS = {"school_id": "s-1", "gateway_id": "gw-1", "device_id": "co2-1", "alert_id": "1"}
#: request bodies that would be valid for the action routes this hub has (others get {})
BODIES = {"/api/v1/gateways/{gateway_id}/approve": {"school_id": "s-1"}}
INJECTIONS = [
    "s-1' OR '1'='1",
    's-1" OR ""="',
    "s-2%27%20OR%201=1--",
    "../../../etc/passwd",
    "..%2F..%2Fs-2",
    "s-1;DROP TABLE school",
    "%00",
    "<script>alert(1)</script>",
    "s-2\u0000",
    "${jndi:ldap://x}",
    "学校-1",
    "x" * 5000,
]


def action_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every route that changes something: (method, path template)."""
    return [
        (method, path)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
        if method in ("post", "put", "patch", "delete") and "{" in path
    ]


def fill(template: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        template = template.replace(f"{{{name}}}", value)
    return re.sub(r"\{[^}]+\}", "1", template)


def test_a_district_operator_cannot_act_on_another_districts_things_on_any_route(
    app: FastAPI, client: TestClient, tokens: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    routes = action_routes(app)
    assert ("post", "/api/v1/gateways/{gateway_id}/approve") in routes
    south = bearer(tokens["south-ops"])

    for method, template in routes:
        url = fill(template, NORTH_IDS)
        response = client.request(method, url, json=BODIES.get(template, {}), headers=south)
        assert response.status_code in (403, 404, 422), (method, url, response.text)
        assert not any(marker in response.text for marker in ("Primary School", 'gw-1"')), url

    admin = bearer(tokens["admin"])
    entries = client.get("/api/v1/audit", params={"actor": "south-ops"}, headers=admin).json()
    assert entries["count"] >= 1
    assert all(e["result"] != "ok" for e in entries["data"])


@pytest.mark.parametrize("user", ["north-viewer"])
def test_injection_in_paths_and_query_values_never_errors_and_never_widens_the_scope(
    app: FastAPI, client: TestClient, tokens: dict[str, str], user: str
) -> None:
    headers = bearer(tokens[user])
    gets = [
        (path, {p["name"] for p in methods["get"].get("parameters", []) if p["in"] == "query"})
        for path, methods in app.openapi()["paths"].items()
        if "get" in methods and path.startswith("/api/") and path != ENDLESS
    ]
    for value in INJECTIONS:
        for path, params in gets:
            quoted = quote(value, safe="")
            url = re.sub(r"\{[^}]+\}", quoted, path)
            responses = [client.get(url, headers=headers)]
            responses += [
                client.get(path, params={p: value}, headers=headers)
                for p in params
                if "{" not in path
            ]
            for response in responses:
                assert response.status_code in (200, 403, 404, 422), (url, value, response.text)
                if response.status_code == 200:
                    leaked = [m for m in SOUTH_MARKERS if m in response.text]
                    assert not leaked, (url, value, leaked)
    schools = client.get("/api/v1/schools", headers=bearer(tokens["admin"])).json()
    assert schools["count"] == 2  # nothing was dropped or changed


def test_a_viewer_never_acts_on_any_route_even_in_its_own_scope(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> None:
    viewer = bearer(tokens["north-viewer"])

    for method, template in action_routes(app):
        url = fill(template, NORTH_IDS)
        response = client.request(method, url, json=BODIES.get(template, {}), headers=viewer)
        assert response.status_code == 403, (method, url, response.text)
