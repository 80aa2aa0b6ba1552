"""A reproducible city of simulated schools: plan it from a seed, run it, hand agents their devices.

``plan_city`` is pure: the same arguments give the same districts, schools, rooms, devices and
seeds. ``run_fleet`` starts one Modbus TCP server per school (one unit id per Modbus device) on
a free port and one MQTT publisher per MQTT device (the recording-room controller, the Zigbee
blackboard light, which also takes set commands) on the site broker, under
``site/<school_id>/<device_id>``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_profiles.loader import load_profiles
from device_profiles.schema import Profile
from simulators.devices import Classroom, SimulatedDevice
from simulators.faults import Fault
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock

DISTRICT_NAMES = (
    "Dongcheng", "Xicheng", "Haidian", "Chaoyang", "Fengtai", "Nanshan", "Futian", "Luohu",
    "Tianhe", "Yuexiu", "Jinjiang", "Wuhou", "Qingyang", "Jianghan", "Wuchang", "Xuhui",
    "Minhang", "Pudong", "Gulou", "Xuanwu", "Yuhua", "Lianhu", "Beilin", "Yanta",
)  # fmt: skip
SCHOOL_KINDS = ("Primary School", "Middle School", "Experimental School", "Nine-Year School")
SCHOOL_PREFIXES = (
    "No. 1", "No. 2", "No. 3", "No. 5", "No. 8", "Yucai", "Shiyan", "Hongxing", "Xinhua",
    "Chunhui", "Guangming", "Wenhua", "Zhongshan", "Peizheng", "Qiushi", "Minzhu",
)  # fmt: skip

SITE_TOPIC_ROOT = "site"


@dataclass(frozen=True)
class DeviceSpec:
    """One line of the per-school device set."""

    key: str  # device id suffix inside its room
    profile: str
    room: str
    room_name: str


#: the fixed device set of every school (room ids and readable names)
SCHOOL_DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec("dali", "arlight_dali_logic_lite", "r101", "Classroom 101"),
    DeviceSpec("lux", "renke_rs_gzws_n01", "r101", "Classroom 101"),
    DeviceSpec("air", "sensecap_s_co2_03", "r101", "Classroom 101"),
    DeviceSpec("gas", "honeywell_midas_gas", "lab1", "Chemistry Lab 1"),
    DeviceSpec("meter", "eastron_sdm120", "pnl1", "Main Distribution Panel"),
    DeviceSpec("ctrl", "recording_room_controller", "rec1", "Recording Classroom 1"),
    # the blackboard light on a Zigbee dimmer (Zigbee2MQTT), switched and dimmed by commands
    DeviceSpec("board", "tuya_ts0601_dimmer", "r101", "Classroom 101"),
)

#: the room whose lighting the power meter's circuit feeds
METERED_ROOM = "r101"


@dataclass(frozen=True)
class DevicePlan:
    id: str  # unique within the school, e.g. "r101-dali"
    profile: str
    room: str
    room_name: str
    seed: int


@dataclass(frozen=True)
class SchoolPlan:
    id: str  # "d1-s01"
    name: str
    district_id: str
    gateway_id: str  # "gw-d1-s01"
    seed: int
    devices: tuple[DevicePlan, ...]


@dataclass(frozen=True)
class DistrictPlan:
    id: str  # "d1"
    name: str
    schools: tuple[SchoolPlan, ...]


@dataclass(frozen=True)
class CityPlan:
    seed: int
    city_id: str
    city_name: str
    districts: tuple[DistrictPlan, ...]

    @property
    def schools(self) -> list[SchoolPlan]:
        return [school for district in self.districts for school in district.schools]

    def school(self, school_id: str) -> SchoolPlan:
        for school in self.schools:
            if school.id == school_id:
                return school
        raise KeyError(f"no school {school_id!r} in this city")

    def district(self, district_id: str) -> DistrictPlan:
        for district in self.districts:
            if district.id == district_id:
                return district
        raise KeyError(f"no district {district_id!r} in this city")

    def site_identity(self, school_id: str) -> dict[str, str]:
        """The agent's ``gateway.site`` block for a school."""
        school = self.school(school_id)
        district = self.district(school.district_id)
        return {
            "city_id": self.city_id,
            "city_name": self.city_name,
            "district_id": district.id,
            "district_name": district.name,
            "school_id": school.id,
            "school_name": school.name,
        }


def _seed(city_seed: int, name: str) -> int:
    return zlib.crc32(f"{city_seed}:{name}".encode())


def plan_city(
    districts: int,
    schools_per_district: int,
    *,
    seed: int,
    city_id: str = "city1",
    city_name: str = "Demo City",
) -> CityPlan:
    """Districts ``d1``.., schools ``d1-s01``.., gateways ``gw-d1-s01``; names from the seed."""
    if not 1 <= districts <= 99 or not 1 <= schools_per_district <= 99:
        raise ValueError("districts and schools_per_district must be 1..99")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(DISTRICT_NAMES))
    planned = []
    for d in range(districts):
        name = DISTRICT_NAMES[order[d % len(order)]]
        if d >= len(order):
            name = f"{name} {d // len(order) + 1}"
        district_id = f"d{d + 1}"
        names = _school_names(rng, name, schools_per_district)
        schools = tuple(
            _plan_school(seed, district_id, s + 1, names[s]) for s in range(schools_per_district)
        )
        planned.append(DistrictPlan(district_id, f"{name} District", schools))
    return CityPlan(seed, city_id, city_name, tuple(planned))


def _school_names(rng: np.random.Generator, district: str, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        prefix = SCHOOL_PREFIXES[int(rng.integers(len(SCHOOL_PREFIXES)))]
        kind = SCHOOL_KINDS[int(rng.integers(len(SCHOOL_KINDS)))]
        name = f"{district} {prefix} {kind}"
        if name in names:
            name = f"{name} (Campus {len(names) + 1})"
        names.append(name)
    return names


def _plan_school(city_seed: int, district_id: str, number: int, name: str) -> SchoolPlan:
    school_id = f"{district_id}-s{number:02d}"
    devices = tuple(
        DevicePlan(
            id=f"{spec.room}-{spec.key}",
            profile=spec.profile,
            room=spec.room,
            room_name=spec.room_name,
            seed=_seed(city_seed, f"{school_id}/{spec.room}-{spec.key}"),
        )
        for spec in SCHOOL_DEVICES
    )
    return SchoolPlan(
        id=school_id,
        name=name,
        district_id=district_id,
        gateway_id=f"gw-{school_id}",
        seed=_seed(city_seed, school_id),
        devices=devices,
    )


def site_topic(school_id: str, device_id: str) -> str:
    """A site-broker device topic: ``site/<school_id>/<device_id>``."""
    return f"{SITE_TOPIC_ROOT}/{school_id}/{device_id}"


@dataclass
class RunningSchool:
    plan: SchoolPlan
    server: ModbusSimServer
    unit_ids: dict[str, int]  # device id -> unit id
    devices: dict[str, SimulatedDevice]
    publishers: dict[str, MqttDevicePublisher] = field(default_factory=dict)


@dataclass
class RunningFleet:
    """A started city: servers, publishers and the device lists agents need."""

    plan: CityPlan
    host: str
    clock: SimClock
    schools: dict[str, RunningSchool]

    def agent_device_configs(self, school_id: str) -> list[dict[str, Any]]:
        """The ``devices:`` list of that school's AgentSettings (edge_agent DeviceConfig dicts)."""
        school = self.schools[school_id]
        configs: list[dict[str, Any]] = []
        for device in school.plan.devices:
            entry: dict[str, Any] = {
                "id": device.id,
                "profile": device.profile,
                "room": device.room,
                "room_name": device.room_name,
            }
            if device.id in school.unit_ids:
                entry["modbus"] = {
                    "host": self.host,
                    "port": school.server.port,
                    "unit_id": school.unit_ids[device.id],
                }
            else:
                entry["mqtt"] = {"topic": site_topic(school_id, device.id)}
            configs.append(entry)
        return configs

    def device(self, school_id: str, device_id: str) -> SimulatedDevice:
        return self.schools[school_id].devices[device_id]

    def set_fault(self, school_id: str, device_id: str, fault: Fault | None) -> None:
        """Start (or with None, clear) a fault on one device."""
        self.device(school_id, device_id).set_fault(fault)

    def published(self, school_id: str) -> int:
        """MQTT payloads the school's devices have had acknowledged by the site broker."""
        return sum(p.published for p in self.schools[school_id].publishers.values())

    async def stop(self) -> None:
        for school in self.schools.values():
            for publisher in school.publishers.values():
                await publisher.stop()
            await school.server.stop()


def _fixed_for(
    fixed_values: Mapping[str, Mapping[str, float]] | None, school_id: str, device: DevicePlan
) -> dict[str, float] | None:
    if not fixed_values:
        return None
    merged = dict(fixed_values.get(device.profile, {}))
    merged.update(fixed_values.get(f"{school_id}/{device.id}", {}))
    return merged or None


def _unit_ids(devices: list[tuple[DevicePlan, Profile]]) -> dict[str, int]:
    """The profile's default unit id when free, else the lowest free id (1..247)."""
    taken: set[int] = set()
    out: dict[str, int] = {}
    for device, profile in devices:
        assert profile.modbus is not None
        unit = profile.modbus.default_unit_id
        if unit in taken or unit == 0:
            unit = next(u for u in range(1, 248) if u not in taken)
        taken.add(unit)
        out[device.id] = unit
    return out


async def run_fleet(
    plan: CityPlan,
    *,
    host: str = "127.0.0.1",
    site_broker_host: str = "127.0.0.1",
    site_broker_port: int = 1883,
    clock: SimClock,
    fixed_values: Mapping[str, Mapping[str, float]] | None = None,
    mqtt_interval_s: float | None = None,
    profiles: Mapping[str, Profile] | None = None,
    base_port: int = 0,
) -> RunningFleet:
    """Start every school of ``plan``.

    School ``i`` (in plan order) serves Modbus on ``base_port + i``, or on a free port when
    ``base_port`` is 0 (tests, the demo); fixed ports suit a container topology.

    ``fixed_values`` maps a profile id (every device of that type) or ``"<school_id>/<device_id>"``
    (one device, wins) to point values the device then serves exactly. ``mqtt_interval_s``
    overrides the profiles' publish interval (tests use a short one).
    """
    profiles = profiles if profiles is not None else load_profiles()
    fleet = RunningFleet(plan=plan, host=host, clock=clock, schools={})
    try:
        for index, school_plan in enumerate(plan.schools):
            port = base_port + index if base_port else 0
            fleet.schools[school_plan.id] = await _start_school(
                school_plan, profiles, host, port, site_broker_host, site_broker_port, clock,
                fixed_values, mqtt_interval_s,
            )  # fmt: skip
    except BaseException:
        await fleet.stop()
        raise
    return fleet


async def _start_school(
    plan: SchoolPlan,
    profiles: Mapping[str, Profile],
    host: str,
    port: int,
    broker_host: str,
    broker_port: int,
    clock: SimClock,
    fixed_values: Mapping[str, Mapping[str, float]] | None,
    mqtt_interval_s: float | None,
) -> RunningSchool:
    rooms: dict[str, Classroom] = {}
    devices: dict[str, SimulatedDevice] = {}
    for device in plan.devices:
        room_key = METERED_ROOM if device.profile == "eastron_sdm120" else device.room
        room = rooms.setdefault(room_key, Classroom(_seed(plan.seed, room_key)))
        devices[device.id] = SimulatedDevice(
            device.id,
            profiles[device.profile],
            seed=device.seed,
            room=room,
            fixed_values=_fixed_for(fixed_values, plan.id, device),
        )
    modbus = [(d, profiles[d.profile]) for d in plan.devices if profiles[d.profile].modbus]
    unit_ids = _unit_ids(modbus)
    server = ModbusSimServer(
        [ServedUnit(unit_ids[d.id], devices[d.id]) for d, _ in modbus],
        clock=clock,
        host=host,
        port=port,
    )
    await server.start()
    school = RunningSchool(plan, server, unit_ids, devices)
    for device in plan.devices:
        if profiles[device.profile].mqtt is None:
            continue
        publisher = MqttDevicePublisher(
            devices[device.id],
            topic=site_topic(plan.id, device.id),
            host=broker_host,
            port=broker_port,
            clock=clock,
            interval_s=mqtt_interval_s,
        )
        publisher.start()
        school.publishers[device.id] = publisher
    await asyncio.sleep(0)
    return school
