"""The registry (审核备案) in bulk: districts, schools, gateways, rooms and expected devices from a
YAML or CSV file (``campus hub import FILE``).

Imported devices are approved (by whoever imported them); once a gateway's devices are imported,
any other device it reports waits as ``pending`` until someone approves it. Importing again
renames and adds, never deletes. A gateway already bound to another school is an error naming the
row, and nothing of the file is applied.

YAML::

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
                  - {id: r101, name: Room 101, type: classroom,
                     devices: [{id: co2-1, profile: sensecap_s_co2_03}]}

CSV: one row per device, with the header
``city_id,city_name,district_id,district_name,school_id,school_name,gateway_id,room_id,room_name,
room_type,device_id,profile``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_hub.db.devices import ensure_room
from cloud_hub.db.models import Approval, Device, District, Gateway, School
from device_profiles.schema import Profile

Ident = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
CSV_COLUMNS = (
    "city_id",
    "city_name",
    "district_id",
    "district_name",
    "school_id",
    "school_name",
    "gateway_id",
    "room_id",
    "room_name",
    "room_type",
    "device_id",
    "profile",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceEntry(_Strict):
    id: str = Ident
    profile: str = Ident


class RoomEntry(_Strict):
    id: str = Ident
    name: str = Field(default="", max_length=200)
    type: str = Field(default="", max_length=32)
    devices: list[DeviceEntry] = Field(default_factory=list)


class GatewayEntry(_Strict):
    id: str = Ident
    rooms: list[RoomEntry] = Field(default_factory=list)


class SchoolEntry(_Strict):
    id: str = Ident
    name: str = Field(default="", max_length=200)
    gateways: list[GatewayEntry] = Field(default_factory=list)


class DistrictEntry(_Strict):
    id: str = Ident
    name: str = Field(default="", max_length=200)
    city_id: str = Ident
    city_name: str = Field(default="", max_length=200)
    schools: list[SchoolEntry] = Field(default_factory=list)


class Registry(_Strict):
    districts: list[DistrictEntry] = Field(default_factory=list)


class RegistryError(Exception):
    """The file cannot be imported; the message names the file, the place and the fix."""


def read_registry(path: Path) -> Registry:
    """Parse a ``.yaml``/``.yml`` or ``.csv`` registry file."""
    try:
        if path.suffix.lower() == ".csv":
            return _from_csv(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            return Registry.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise RegistryError(f"{path}: {_first_error(exc)}") from None
    raise RegistryError(f"{path}: use a .yaml, .yml or .csv file")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"


def _from_csv(path: Path) -> Registry:
    districts: dict[str, DistrictEntry] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RegistryError(f"{path}: header lacks {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                _add_row(districts, row)
            except ValidationError as exc:
                raise RegistryError(f"{path}: line {line}: {_first_error(exc)}") from None
    return Registry(districts=list(districts.values()))


def _add_row(districts: dict[str, DistrictEntry], row: Mapping[str, str]) -> None:
    district = districts.get(row["district_id"])
    if district is None:
        district = DistrictEntry(
            id=row["district_id"],
            name=row["district_name"],
            city_id=row["city_id"],
            city_name=row["city_name"],
        )
        districts[district.id] = district
    school = _find(district.schools, row["school_id"]) or SchoolEntry(
        id=row["school_id"], name=row["school_name"]
    )
    if school not in district.schools:
        district.schools.append(school)
    gateway = _find(school.gateways, row["gateway_id"]) or GatewayEntry(id=row["gateway_id"])
    if gateway not in school.gateways:
        school.gateways.append(gateway)
    room = _find(gateway.rooms, row["room_id"]) or RoomEntry(
        id=row["room_id"], name=row["room_name"], type=row["room_type"]
    )
    if room not in gateway.rooms:
        gateway.rooms.append(room)
    if row["device_id"]:
        room.devices.append(DeviceEntry(id=row["device_id"], profile=row["profile"]))


Entry = TypeVar("Entry", SchoolEntry, GatewayEntry, RoomEntry)


def _find(items: list[Entry], ident: str) -> Entry | None:
    return next((item for item in items if item.id == ident), None)


@dataclass
class ImportSummary:
    districts: int = 0
    schools: int = 0
    gateways: int = 0
    rooms: int = 0
    devices: int = 0
    unknown_profiles: set[str] = field(default_factory=set)


def import_registry(
    session: Session,
    *,
    registry: Registry,
    actor: str,
    at: datetime,
    profiles: Mapping[str, Profile],
) -> ImportSummary:
    """Apply ``registry`` in the caller's transaction; ``RegistryError`` leaves it to roll back."""
    summary = ImportSummary()
    for d in registry.districts:
        district = session.get(District, d.id) or District(id=d.id, city_id=d.city_id)
        session.add(district)
        district.city_id, district.name = d.city_id, d.name or district.name
        district.city_name = d.city_name or district.city_name
        summary.districts += 1
        for s in d.schools:
            school = session.get(School, s.id) or School(id=s.id, district_id=d.id)
            session.add(school)
            if school.district_id != d.id:
                raise RegistryError(
                    f"school {s.id!r} is in district {school.district_id!r}, not {d.id!r}"
                )
            school.name = s.name or school.name
            summary.schools += 1
            session.flush()
            for g in s.gateways:
                _import_gateway(
                    session,
                    g,
                    school_id=s.id,
                    actor=actor,
                    at=at,
                    profiles=profiles,
                    summary=summary,
                )
    return summary


def _import_gateway(
    session: Session,
    entry: GatewayEntry,
    *,
    school_id: str,
    actor: str,
    at: datetime,
    profiles: Mapping[str, Profile],
    summary: ImportSummary,
) -> None:
    gateway = session.get(Gateway, entry.id) or Gateway(id=entry.id, school_id=school_id)
    session.add(gateway)
    if gateway.school_id not in (None, school_id):
        raise RegistryError(
            f"gateway {entry.id!r} belongs to school {gateway.school_id!r}, not {school_id!r}"
        )
    gateway.school_id = school_id
    gateway.registered_at = gateway.registered_at or at
    summary.gateways += 1
    session.flush()
    for r in entry.rooms:
        room = ensure_room(session, gateway_id=entry.id, key=r.id, name=r.name)
        room.type = r.type or room.type
        summary.rooms += 1
        for dev in r.devices:
            query = select(Device).where(Device.gateway_id == entry.id, Device.key == dev.id)
            device = session.scalar(query) or Device(
                gateway_id=entry.id, key=dev.id, profile=dev.profile, status="unknown"
            )
            session.add(device)
            device.room_id, device.profile = room.id, dev.profile
            device.approval, device.approval_by, device.approval_at = (
                Approval.APPROVED.value,
                actor[:100],
                at,
            )
            summary.devices += 1
            if dev.profile not in profiles:
                summary.unknown_profiles.add(dev.profile)
    session.flush()
