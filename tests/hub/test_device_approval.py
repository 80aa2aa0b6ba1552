"""Device approval (审核备案): a registry imported from YAML or CSV; devices a registered gateway
reports beyond it wait as pending (stored, not counted, no alerts) until approved or rejected;
a device whose profile the hub does not know is shown as such."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campus_protocol import EventState
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.cli import app as hub_cli
from cloud_hub.db.base import create_schema, make_engine
from cloud_hub.db.models import Alert, Device, Room, TelemetryWindow
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.registry import RegistryError, import_registry, read_registry
from cloud_hub.settings import HubSettings
from device_profiles.schema import Profile
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry
from tests.hub.write_lock import while_ingest_writes

REGISTRY_YAML = """
districts:
  - id: d-north
    name: North District
    city_id: city-1
    city_name: Example City
    schools:
      - id: s-1
        name: No. 1 Primary School
        gateways:
          - id: gw-1
            rooms:
              - id: r101
                name: Room 101
                type: classroom
                devices:
                  - {id: co2-1, profile: sensecap_s_co2_03}
                  - {id: meter-9, profile: acme_meter_v9}
"""
REGISTRY_CSV = (
    "city_id,city_name,district_id,district_name,school_id,school_name,gateway_id,room_id,"
    "room_name,room_type,device_id,profile\n"
    "city-1,Example City,d-north,North District,s-1,No. 1 Primary School,gw-1,r101,Room 101,"
    "classroom,co2-1,sensecap_s_co2_03\n"
    "city-1,Example City,d-north,North District,s-1,No. 1 Primary School,gw-1,r101,Room 101,"
    "classroom,meter-9,acme_meter_v9\n"
)


@pytest.mark.parametrize(("name", "text"), [("reg.yaml", REGISTRY_YAML), ("reg.csv", REGISTRY_CSV)])
def test_a_registry_file_imports_schools_gateways_rooms_and_approved_devices(
    tmp_path: Path,
    sessions: sessionmaker[Session],
    profiles: dict[str, Profile],
    name: str,
    text: str,
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    with sessions.begin() as session:
        summary = import_registry(
            session, registry=read_registry(path), actor="cli:ops", at=T0, profiles=profiles
        )

    assert (summary.schools, summary.gateways, summary.rooms, summary.devices) == (1, 1, 1, 2)
    assert summary.unknown_profiles == {"acme_meter_v9"}
    with sessions() as session:
        room = session.scalars(select(Room)).one()
        devices = {d.key: d for d in session.scalars(select(Device))}
    assert (room.key, room.name, room.type) == ("r101", "Room 101", "classroom")
    assert {(k, d.approval, d.approval_by) for k, d in devices.items()} == {
        ("co2-1", "approved", "cli:ops"),
        ("meter-9", "approved", "cli:ops"),
    }


def test_a_registry_row_with_a_bad_id_names_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "reg.csv"
    path.write_text(REGISTRY_CSV.replace("gw-1,r101", "gw 1,r101", 1), encoding="utf-8")

    with pytest.raises(RegistryError, match=r"reg.csv: line 2: id: String should match"):
        read_registry(path)


def test_campus_hub_import_applies_the_file_and_names_unknown_profiles(
    tmp_path: Path, profiles: dict[str, Profile]
) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(REGISTRY_YAML, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hub.db'}"

    result = CliRunner().invoke(
        hub_cli, ["import", str(path), "--database-url", url, "--development"]
    )
    again = CliRunner().invoke(
        hub_cli, ["import", str(tmp_path / "nope.yaml"), "--database-url", url, "--development"]
    )

    assert result.exit_code == 0, result.output
    assert "1 gateways, 1 rooms, 2 devices" in result.output
    assert "unknown profile 'acme_meter_v9'" in result.output
    assert again.exit_code == 2 and "No such file" in " ".join(again.output.split())
    assert "Traceback" not in again.output


def test_campus_hub_import_while_ingest_holds_the_write_lock_waits_its_turn(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(REGISTRY_YAML, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    create_schema(engine)

    result = while_ingest_writes(
        engine,
        lambda: CliRunner().invoke(
            hub_cli, ["import", str(path), "--database-url", url, "--development"]
        ),
    )
    engine.dispose()

    assert result.exit_code == 0, result.output  # not "import failed: database is locked"


@pytest.fixture
def registered(
    tmp_path: Path, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(REGISTRY_YAML, encoding="utf-8")
    with sessions.begin() as session:
        import_registry(
            session, registry=read_registry(path), actor="cli:ops", at=T0, profiles=profiles
        )


@pytest.fixture
def client(
    database_url: str,
    registered: None,
    sessions: sessionmaker[Session],
    worker: IngestWorker,
    profiles: dict[str, Profile],
) -> Iterator[TestClient]:
    """gw-1 is registered with co2-1 and meter-9; it also reports gas-1, which is not: gas-1 is
    pending, raises a gas event and has a window stored."""
    reported = [device_health("co2-1"), device_health("gas-1", profile="honeywell_midas_gas")]
    worker.process(*heartbeat(seq=1, devices=reported, site=SITE), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, device="gas-1", at=T0))
    worker.process(
        *telemetry(seq=3, device="gas-1", profile="honeywell_midas_gas", points={"lel": stats(30)})
    )
    app = create_app(
        HubSettings(database_url=database_url, development=True),
        run_ingest=False,
        profiles=profiles,
    )
    app.dependency_overrides[get_now] = lambda: T0 + timedelta(seconds=5)
    with TestClient(app) as client:
        client.tokens = {  # type: ignore[attr-defined]
            "ops": make_user(sessions, "ops", Role.DISTRICT_OPERATOR, "district:d-north", now=T0),
            "viewer": make_user(sessions, "viewer", Role.VIEWER, "district:d-north", now=T0),
            "south": make_user(
                sessions, "south", Role.DISTRICT_OPERATOR, "district:d-south", now=T0
            ),
        }
        yield client


def as_user(client: TestClient, name: str) -> dict[str, str]:
    return bearer(client.tokens[name])  # type: ignore[attr-defined]


def test_a_device_beyond_the_registry_is_pending_stored_uncounted_and_silent(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    devices = client.get("/api/v1/devices", headers=as_user(client, "ops")).json()["data"]
    by_id = {d["id"]: d for d in devices}
    school = client.get("/api/v1/schools/s-1", headers=as_user(client, "ops")).json()

    assert by_id["gas-1"]["approval"] == "pending"
    assert by_id["co2-1"]["approval"] == "approved"
    assert school["devices"]["total"] == 2  # co2-1 and meter-9: gas-1 is not counted
    with sessions() as session:
        assert session.scalars(select(Alert)).all() == []  # its gas event raised nothing
        assert session.scalars(select(TelemetryWindow)).all() != []  # its data is stored


def test_approving_a_device_counts_it_and_lets_it_alert(
    client: TestClient, sessions: sessionmaker[Session], worker: IngestWorker
) -> None:
    approved = client.post(
        "/api/v1/gateways/gw-1/devices/gas-1/approve", headers=as_user(client, "ops")
    )
    worker.process(*event(seq=4, state=EventState.RAISED, device="gas-1", at=T0))

    assert approved.status_code == 200
    assert approved.json()["approval"] == "approved"
    school = client.get("/api/v1/schools/s-1", headers=as_user(client, "ops")).json()
    assert school["devices"]["total"] == 3
    assert [a["device"] for a in school["active_alerts"]] == ["gas-1"]
    with sessions() as session:
        device = session.scalars(select(Device).where(Device.key == "gas-1")).one()
        entries, _ = audit.list_entries(session, actor="ops", action="device.approve")
    assert (device.approval_by, device.approval_at) == ("ops", T0 + timedelta(seconds=5))
    assert [(e.target, e.result) for e in entries] == [("device:gw-1/gas-1", "ok")]


def test_rejecting_a_device_keeps_it_out(client: TestClient) -> None:
    rejected = client.post(
        "/api/v1/gateways/gw-1/devices/gas-1/reject", headers=as_user(client, "ops")
    )

    assert rejected.json()["approval"] == "rejected"
    school = client.get("/api/v1/schools/s-1", headers=as_user(client, "ops")).json()
    assert school["devices"]["total"] == 2


def test_only_an_operator_in_scope_approves(client: TestClient) -> None:
    viewer = client.post(
        "/api/v1/gateways/gw-1/devices/gas-1/approve", headers=as_user(client, "viewer")
    )
    south = client.post(
        "/api/v1/gateways/gw-1/devices/gas-1/approve", headers=as_user(client, "south")
    )
    unknown = client.post(
        "/api/v1/gateways/gw-1/devices/nope/approve", headers=as_user(client, "ops")
    )

    assert viewer.status_code == 403
    assert south.status_code == unknown.status_code == 404


def test_a_device_with_a_profile_the_hub_does_not_know_is_shown_as_such(
    client: TestClient,
) -> None:
    devices = client.get("/api/v1/devices", headers=as_user(client, "ops")).json()["data"]
    known = {d["id"]: d["profile_known"] for d in devices}

    assert known == {"co2-1": True, "gas-1": True, "meter-9": False}
