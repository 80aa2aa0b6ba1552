"""Simulated devices: point values per profile from the signals, writes, fixed values, faults.

A :class:`SimulatedDevice` is protocol-free: the Modbus server and the MQTT publisher ask it for
engineering values by point name and encode them with the profile. Which signal feeds which
point is one small model class per profile id (:data:`MODELS`); a profile without a model is
served from fixed values (and zeros), so a new device type still runs without code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Protocol

from device_profiles.schema import Profile
from simulators import signals
from simulators.faults import Fault, FaultKind


class Classroom:
    """Shared lighting state of one room: automatic levels unless a group was commanded.

    A commanded level holds for the rest of that school day (a manual override); the daylight
    control takes over again the next day.
    """

    def __init__(self, seed: int, groups: int = signals.GROUPS) -> None:
        self.seed = seed
        self.groups = groups
        self._commanded: dict[int, tuple[date, int]] = {}

    def command(self, group: int, level: int, now: datetime) -> None:
        self._commanded[group] = (now.date(), max(0, min(signals.MAX_LEVEL, level)))

    def level(self, group: int, now: datetime) -> int:
        commanded = self._commanded.get(group)
        if commanded is not None and commanded[0] == now.date():
            return commanded[1]
        return signals.lights_level(now, group, self.seed)

    def levels(self, now: datetime) -> list[int]:
        return [self.level(group, now) for group in range(self.groups)]


class PointModel(Protocol):
    """Where one device type's values come from."""

    def values(self, now: datetime) -> dict[str, float]: ...

    def write(self, point: str, value: float, now: datetime) -> set[str]:
        """Apply a write; return the names of points whose values now follow it."""
        ...


class _ReadOnly:
    def write(self, point: str, value: float, now: datetime) -> set[str]:
        return set()


class DaliGatewayModel:
    """Arlight DALI gateway: group caches follow the room's levels; writes command a group."""

    def __init__(self, room: Classroom, devices: int = 4) -> None:
        self.room = room
        self.devices = devices

    def values(self, now: datetime) -> dict[str, float]:
        levels = self.room.levels(now)
        out: dict[str, float] = {}
        for group, level in enumerate(levels):
            out[f"group_{group}_level"] = level
            out[f"group_{group}_on"] = 1.0 if level > 0 else 0.0
            out[f"group_{group}_set_level"] = level
        for address in range(self.devices):
            # DALI QUERY STATUS bit 2: lamp arc power on; the ballast sits in group A mod GROUPS
            out[f"device_{address}_status"] = 0x04 if levels[address % len(levels)] else 0x00
        return out

    def write(self, point: str, value: float, now: datetime) -> set[str]:
        prefix, _, rest = point.partition("_")
        group, _, suffix = rest.partition("_")
        if prefix != "group" or suffix != "set_level" or not group.isdigit():
            return set()
        g = int(group)
        self.room.command(g, round(value), now)
        followers = {point, f"group_{g}_level", f"group_{g}_on"}
        return followers | {
            f"device_{a}_status" for a in range(self.devices) if a % self.room.groups == g
        }


class LuxSensorModel(_ReadOnly):
    """Desk illuminance (daylight plus the room's lights) with temperature and humidity."""

    def __init__(self, room: Classroom, seed: int) -> None:
        self.room = room
        self.seed = seed

    def values(self, now: datetime) -> dict[str, float]:
        lights = signals.lights_share(self.room.levels(now))
        return {
            "illuminance": round(signals.desk_lux(now, lights, self.room.seed)),
            "temperature": signals.temperature_c(now, self.seed),
            "humidity": signals.humidity_pct(now, self.seed),
        }


class AirSensorModel(_ReadOnly):
    """Classroom CO2 (first-order model), temperature and humidity."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def values(self, now: datetime) -> dict[str, float]:
        return {
            "co2": round(signals.co2_ppm(now, self.seed)),
            "temperature": signals.temperature_c(now, self.seed),
            "humidity": signals.humidity_pct(now, self.seed),
        }


class GasDetectorModel(_ReadOnly):
    """Midas detector in a chemistry lab: %LEL (or ppm) near zero, heartbeat bit, alarm bits."""

    UNIT_PPM = 1 << 0
    UNIT_LEL = 1 << 3  # unit bits ppm, ppb, %VOL, %LEL, mA

    def __init__(
        self,
        seed: int,
        low_alarm: float = 25.0,
        high_alarm: float = 50.0,
        unit_code: int = UNIT_LEL,
    ) -> None:
        self.seed = seed
        self.low_alarm = low_alarm
        self.high_alarm = high_alarm
        self.unit_code = unit_code

    def values(self, now: datetime) -> dict[str, float]:
        lel = signals.gas_lel_pct(now, self.seed)
        life0 = signals.device_constant(self.seed, "cell_life", 8000, 17000)
        return {
            "fault_maintenance": 0,
            "fault_instrument": 0,
            "low_alarm": 1.0 if lel >= self.low_alarm else 0.0,
            "high_alarm": 1.0 if lel >= self.high_alarm else 0.0,
            "heartbeat": float(int(now.timestamp() / 2) % 2),
            "concentration": lel,
            "fault_number": 0,
            "concentration_unit_code": self.unit_code,
            "sensor_temperature": round(signals.sensor_temperature_c(now, self.seed)),
            "cell_life_remaining": max(0, round(life0 - now.timestamp() / 3600 % 8000)),
        }


class PowerMeterModel(_ReadOnly):
    """SDM120 on the panel feeding the room: base load, lesson plug load and the lights.

    ``import_energy`` integrates the automatic lighting profile; commanded levels change
    ``active_power`` but not the energy counter.
    """

    def __init__(self, room: Classroom, seed: int) -> None:
        self.room = room
        self.seed = seed

    def values(self, now: datetime) -> dict[str, float]:
        power = signals.power_w(now, self.room.levels(now), self.seed)
        return {
            "voltage": signals.voltage_v(now, self.seed),
            "current": signals.current_a(now, power, self.seed),
            "active_power": power,
            "power_factor": signals.power_factor(now, self.seed),
            "frequency": signals.frequency_hz(now, self.seed),
            "import_energy": signals.energy_kwh(now, self.seed),
        }


class RecordingRoomModel(_ReadOnly):
    """Recording classroom controller: records scheduled lessons, storage fills meanwhile."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def values(self, now: datetime) -> dict[str, float]:
        on = signals.recording(now, self.seed)
        free = signals.storage_free_gb(now, self.seed)
        return {
            "recording_state": 1.0 if on else 0.0,
            "encoder_online": 1.0,
            "storage_free_gb": round(free, 1),
            "storage_free_pct": round(100 * free / signals.STORAGE_GB, 1),
            "live_stream_state": 1.0 if on else 0.0,
            "live_bitrate": round(4000 + signals.noise(self.seed, "kbps", now, 150)) if on else 0,
            "tracking_host_online": 1.0,
            "camera_teacher_online": 1.0,
            "camera_student_online": 1.0,
            "camera_board_online": 1.0,
            "audio_level": round(
                (-18.0 if on else -62.0) + signals.noise(self.seed, "audio", now, 2.0), 1
            ),
        }


class ColdRoomModel:
    """Eliwell cold-room controller: the air follows the set-point (writable) within a degree."""

    def __init__(self, seed: int, setpoint: float = 3.0) -> None:
        self.seed = seed
        self.setpoint = setpoint

    def values(self, now: datetime) -> dict[str, float]:
        air = self.setpoint + 0.5 + signals.noise(self.seed, "cold_air", now, 0.2)
        return {
            "temperature": round(air, 1),
            "evaporator_temperature": round(
                self.setpoint - 6 + signals.noise(self.seed, "evap", now, 0.3), 1
            ),
            "setpoint": self.setpoint,
        }

    def write(self, point: str, value: float, now: datetime) -> set[str]:
        if point != "setpoint":
            return set()
        self.setpoint = value
        return {"setpoint", "temperature", "evaporator_temperature"}


class RelayModuleModel:
    """Relay board: a command register per output (0x0100 on, 0x0200 off, 0x0300 toggle)."""

    ON, OFF, TOGGLE = 0x0100, 0x0200, 0x0300

    def __init__(self, outputs: int = 8) -> None:
        self.states = [0.0] * outputs

    def values(self, now: datetime) -> dict[str, float]:
        return {f"relay_{n + 1}": state for n, state in enumerate(self.states)}

    def write(self, point: str, value: float, now: datetime) -> set[str]:
        name, _, suffix = point.rpartition("_")
        number = name.removeprefix("relay_")
        if suffix != "command" or not number.isdigit() or not 1 <= int(number) <= len(self.states):
            return set()
        index = int(number) - 1
        command = round(value)
        if command == self.ON:
            self.states[index] = 1.0
        elif command == self.OFF:
            self.states[index] = 0.0
        elif command == self.TOGGLE:
            self.states[index] = 1.0 - self.states[index]
        return {point, f"relay_{index + 1}"}


class PoolZoneModel(_ReadOnly):
    """Water-zone monitor: a quiet pool (level near 118 cm), nobody inside the fence."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def values(self, now: datetime) -> dict[str, float]:
        return {
            "person_in_zone": 0.0,
            "intrusions_today": 0.0,
            "water_level": round(118 + signals.noise(self.seed, "pool", now, 0.5), 1),
            "level_alarm": 0.0,
            "camera_online": 1.0,
        }


class ZigbeeSwitchModel:
    """A Zigbee2MQTT light or relay: it holds what it was last set to (off at first; a dimmer at
    full brightness), with a steady link quality."""

    def __init__(self, profile: Profile, seed: int) -> None:
        self.held = {"state": 0.0}
        if "brightness" in profile.point_names:
            self.held["brightness"] = 254.0
        self.linkquality = round(signals.device_constant(seed, "lqi", 60, 200))

    def values(self, now: datetime) -> dict[str, float]:
        return {**self.held, "linkquality": self.linkquality}

    def write(self, point: str, value: float, now: datetime) -> set[str]:
        if point not in self.held:
            return set()
        self.held[point] = value
        return {point}


class FixedOnlyModel(_ReadOnly):
    """A profile without a signal model: every point reads 0 unless given a fixed value."""

    def __init__(self, points: Iterable[str]) -> None:
        self.points = list(points)

    def values(self, now: datetime) -> dict[str, float]:
        return dict.fromkeys(self.points, 0.0)


#: profile id -> model factory ``(profile, room, seed) -> PointModel``
MODELS: dict[str, Callable[[Profile, Classroom, int], PointModel]] = {
    "arlight_dali_logic_lite": lambda profile, room, seed: DaliGatewayModel(room),
    "renke_rs_gzws_n01": lambda profile, room, seed: LuxSensorModel(room, seed),
    "sensecap_s_co2_03": lambda profile, room, seed: AirSensorModel(seed),
    "honeywell_midas_gas": lambda profile, room, seed: GasDetectorModel(seed),
    "eastron_sdm120": lambda profile, room, seed: PowerMeterModel(room, seed),
    "recording_room_controller": lambda profile, room, seed: RecordingRoomModel(seed),
    "honeywell_midas_h2s": lambda profile, room, seed: GasDetectorModel(
        seed, 7.1, 14.2, GasDetectorModel.UNIT_PPM
    ),
    "honeywell_midas_co": lambda profile, room, seed: GasDetectorModel(
        seed, 17.0, 34.0, GasDetectorModel.UNIT_PPM
    ),
    "eliwell_id974_cold_room": lambda profile, room, seed: ColdRoomModel(seed),
    "eletechsup_8ch_relay": lambda profile, room, seed: RelayModuleModel(),
    "pool_zone_monitor": lambda profile, room, seed: PoolZoneModel(seed),
    "tuya_ts0601_dimmer": lambda profile, room, seed: ZigbeeSwitchModel(profile, seed),
    "sonoff_zbmini": lambda profile, room, seed: ZigbeeSwitchModel(profile, seed),
    # eletechsup_8di_safety_inputs: every contact at rest (0) unless given a fixed value
}


class UnknownPointError(KeyError):
    """A fixed value or write names a point the profile does not have."""


class SimulatedDevice:
    """One device: its profile, where its values come from, fixed values and an active fault."""

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        *,
        seed: int,
        room: Classroom | None = None,
        fixed_values: dict[str, float] | None = None,
    ) -> None:
        unknown = sorted(set(fixed_values or {}) - set(profile.point_names))
        if unknown:
            raise UnknownPointError(f"{device_id}: profile {profile.id} has no points {unknown}")
        self.device_id = device_id
        self.profile = profile
        self.seed = seed
        self.room = room or Classroom(seed)
        factory = MODELS.get(profile.id)
        self.model: PointModel = (
            factory(profile, self.room, seed) if factory else FixedOnlyModel(profile.point_names)
        )
        self.fixed_values = dict(fixed_values or {})
        self.fault: Fault | None = None
        self._frozen: dict[str, float] | None = None
        self.writes = 0

    def set_fault(self, fault: Fault | None) -> None:
        """Start (or with None, clear) a fault."""
        self.fault = fault
        self._frozen = None

    def read(self, now: datetime) -> dict[str, float]:
        """Engineering values of every point at ``now`` (frozen while ``stuck``)."""
        if self.fault is not None and self.fault.kind is FaultKind.STUCK:
            if self._frozen is None:
                self._frozen = self._values(now)
            return dict(self._frozen)
        return self._values(now)

    def _values(self, now: datetime) -> dict[str, float]:
        values = {name: 0.0 for name in self.profile.point_names}
        values.update(self.model.values(now))
        values.update(self.fixed_values)
        return values

    def write(self, point: str, value: float, now: datetime) -> None:
        """A write to a writable point: the model follows, and so do fixed values it affects.

        Faults: ``ignore_writes`` drops it (counted); ``wrong_value`` applies a wrong value."""
        if point not in self.profile.point_names:
            raise UnknownPointError(f"{self.device_id}: no point {point!r}")
        self.writes += 1
        kind = self.fault.kind if self.fault is not None else None
        if kind is FaultKind.IGNORE_WRITES:
            return
        if kind is FaultKind.WRONG_VALUE:
            value = misapplied(value)
        followers = self.model.write(point, value, now)
        for name in followers & self.fixed_values.keys():
            del self.fixed_values[name]
        if point not in followers:  # a writable point without a model: it keeps what was written
            self.fixed_values[point] = value


def misapplied(value: float) -> float:
    """What a ``wrong_value`` device applies: 0 and 1 swap (off and on), other values halve."""
    if value in (0.0, 1.0):
        return 1.0 - value
    return float(round(value / 2))
