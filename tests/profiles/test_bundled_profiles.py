"""The bundled device profiles load, cite their sources and standards, and decode."""

from __future__ import annotations

import re

import pytest

from device_profiles.errors import EncodeError
from device_profiles.loader import load_profiles
from device_profiles.mqtt_payload import encode_mqtt_command
from device_profiles.registers import decode_block, encode_point, plan_reads
from device_profiles.schema import Profile, Severity

EXPECTED_IDS = {
    "arlight_dali_logic_lite",
    "renke_rs_gzws_n01",
    "sensecap_s_co2_03",
    "honeywell_midas_gas",
    "eastron_sdm120",
    "recording_room_controller",
    "eliwell_id974_cold_room",
    "honeywell_midas_h2s",
    "honeywell_midas_co",
    "eletechsup_8di_safety_inputs",
    "eletechsup_8ch_relay",
    "pool_zone_monitor",
    "tuya_ts0601_dimmer",
    "sonoff_zbmini",
}
_MIDAS_CODES = {"fault_number", "concentration_unit_code"}

#: points that are dimensionless or codes and so may have no unit (flags and enums are exempt)
UNITLESS_ALLOWED = {
    "eastron_sdm120": {"power_factor"},
    "honeywell_midas_gas": _MIDAS_CODES,
    "honeywell_midas_h2s": _MIDAS_CODES,
    "honeywell_midas_co": _MIDAS_CODES,
    "eletechsup_8di_safety_inputs": {
        "smoke_fire_alarm",
        "one_key_alarm",
        "chem_store_door",
        "cold_room_door",
    }
    | {f"input_{n}" for n in range(5, 9)},
    "eletechsup_8ch_relay": {f"relay_{n}" for n in range(1, 9)}
    | {f"relay_{n}_command" for n in range(1, 9)},
    "pool_zone_monitor": {"intrusions_today"},
    "tuya_ts0601_dimmer": {"brightness"},  # a Zigbee level 0-254
    "arlight_dali_logic_lite": {f"device_{a}_status" for a in range(4)}
    | {f"group_{g}_level" for g in range(4)}
    | {f"group_{g}_set_level" for g in range(4)},
}

STANDARD_ID = re.compile(r"\bGB(/T)? \d{4,5}-\d{4}\b")


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


def test_all_bundled_profiles_load_with_the_shared_ids(profiles: dict[str, Profile]) -> None:
    assert set(profiles) == EXPECTED_IDS


def test_every_profile_lists_source_urls(profiles: dict[str, Profile]) -> None:
    for profile in profiles.values():
        assert profile.references, profile.id
        assert all(url.startswith(("http://", "https://")) for url in profile.references)


def test_every_alert_rule_cites_a_standard_or_says_it_is_a_product_rule(
    profiles: dict[str, Profile],
) -> None:
    for profile in profiles.values():
        for rule in profile.alerts:
            where = f"{profile.id}.{rule.id}"
            if STANDARD_ID.search(rule.standard) is None:
                assert rule.standard.startswith("none: product rule"), where
                assert "product rule" in rule.message.lower(), where


def test_every_physical_point_has_a_unit(profiles: dict[str, Profile]) -> None:
    for profile in profiles.values():
        allowed = UNITLESS_ALLOWED.get(profile.id, set())
        if profile.modbus is not None:
            unitless = {
                p.name
                for p in profile.modbus.points
                if not p.unit and p.bit is None and not p.nonzero
            }
        else:
            assert profile.mqtt is not None
            unitless = {p.name for p in profile.mqtt.points if not p.unit and p.type == "number"}
        assert unitless <= allowed, f"{profile.id}: {sorted(unitless - allowed)} need a unit"


def _rules(profile: Profile) -> dict[str, tuple[str, float, Severity]]:
    return {r.id: (r.op.value, r.threshold, r.severity) for r in profile.alerts if r.op is not None}


def test_gas_alarms_follow_gb_t_50493_levels(profiles: dict[str, Profile]) -> None:
    rules = _rules(profiles["honeywell_midas_gas"])
    assert rules["gas_level_1"] == (">=", 25, Severity.II)
    assert rules["gas_level_2"] == (">=", 50, Severity.I)
    assert profiles["honeywell_midas_gas"].unit_of("concentration") == "%LEL"


def test_co2_and_illuminance_thresholds_come_from_the_cited_standards(
    profiles: dict[str, Profile],
) -> None:
    co2 = _rules(profiles["sensecap_s_co2_03"])
    assert co2["co2_above_hygiene_limit"][:2] == (">", 1000)
    assert co2["co2_above_design_limit"] == (">", 1500, Severity.III)
    lux = profiles["renke_rs_gzws_n01"].alerts[0]
    assert (lux.op.value, lux.threshold, lux.stat.value, lux.severity) == ("<", 300, "mean", "III")


def test_write_only_dali_group_levels_are_never_polled(profiles: dict[str, Profile]) -> None:
    modbus = profiles["arlight_dali_logic_lite"].modbus
    assert modbus is not None
    polled = {p.name for block in plan_reads(modbus) for p in block.points}
    assert not any(name.endswith("_set_level") for name in polled)
    assert {"group_0_on", "group_3_level", "device_3_status"} <= polled


MQTT_PROFILES = {
    "recording_room_controller",
    "pool_zone_monitor",
    "tuya_ts0601_dimmer",
    "sonoff_zbmini",
}


@pytest.mark.parametrize("profile_id", sorted(EXPECTED_IDS - MQTT_PROFILES))
def test_every_polled_point_round_trips_through_its_registers(
    profiles: dict[str, Profile], profile_id: str
) -> None:
    modbus = profiles[profile_id].modbus
    assert modbus is not None
    for block in plan_reads(modbus):
        registers = [0] * block.count
        for point in block.points:
            raw = encode_point(point, 1, modbus)
            at = point.address - block.start
            registers[at : at + len(raw)] = [
                old | new for old, new in zip(registers[at : at + len(raw)], raw, strict=True)
            ]
        decoded = decode_block(block, registers, modbus)
        assert decoded.invalid == []
        assert decoded.values == pytest.approx({p.name: 1.0 for p in block.points})


def test_there_are_at_least_twelve_real_device_types(profiles: dict[str, Profile]) -> None:
    assert len(profiles) >= 12


def test_toxic_gas_alarms_are_oel_and_twice_oel_in_ppm(profiles: dict[str, Profile]) -> None:
    h2s = _rules(profiles["honeywell_midas_h2s"])
    assert h2s["toxic_level_1"] == (">=", 7.1, Severity.II)  # 10 mg/m³ at 20 °C
    assert h2s["toxic_level_2"] == (">=", 14.2, Severity.I)
    co = _rules(profiles["honeywell_midas_co"])
    assert (co["toxic_level_1"][1], co["toxic_level_2"][1]) == (17, 34)


def test_the_safety_rules_of_the_issue_have_their_grades(profiles: dict[str, Profile]) -> None:
    def grade(profile: str, rule: str) -> str:
        return next(r.severity.value for r in profiles[profile].alerts if r.id == rule)

    assert grade("eliwell_id974_cold_room", "chilled_storage_warm") == "II"
    assert grade("eletechsup_8di_safety_inputs", "fire_alarm") == "I"
    assert grade("eletechsup_8di_safety_inputs", "one_key_alarm_pressed") == "I"
    assert grade("eletechsup_8di_safety_inputs", "chem_store_door_opened") == "II"
    assert grade("pool_zone_monitor", "person_in_water_zone") == "I"
    assert grade("pool_zone_monitor", "water_level_alarm") == "I"
    assert grade("honeywell_midas_gas", "safety_device_offline") == "III"
    assert grade("arlight_dali_logic_lite", "lights_on_after_hours") == "IV"
    assert grade("recording_room_controller", "recording_not_started") == "III"
    assert grade("sensecap_s_co2_03", "co2_above_hygiene_limit") == "IV"


@pytest.mark.parametrize("profile_id", ["tuya_ts0601_dimmer", "sonoff_zbmini"])
def test_zigbee2mqtt_devices_take_set_commands_on_the_documented_topic_and_payload(
    profiles: dict[str, Profile], profile_id: str
) -> None:
    mapping = profiles[profile_id].mqtt
    assert mapping is not None and mapping.command is not None
    assert mapping.state_topic("zigbee2mqtt/r101") == "zigbee2mqtt/r101"
    assert mapping.command_topic("zigbee2mqtt/r101") == "zigbee2mqtt/r101/set"
    assert encode_mqtt_command(mapping, {"state": 1}) == b'{"state":"ON"}'
    assert "linkquality" not in profiles[profile_id].writable_points


def test_a_dimmer_command_sends_whole_levels_as_integers(profiles: dict[str, Profile]) -> None:
    mapping = profiles["tuya_ts0601_dimmer"].mqtt
    assert mapping is not None
    assert encode_mqtt_command(mapping, {"brightness": 128.0}) == b'{"brightness":128}'
    with pytest.raises(EncodeError, match="not writable"):
        encode_mqtt_command(mapping, {"linkquality": 3})
