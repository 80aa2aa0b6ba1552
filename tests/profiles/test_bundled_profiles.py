"""The bundled device profiles load, cite their sources and standards, and decode."""

from __future__ import annotations

import re

import pytest

from device_profiles.loader import load_profiles
from device_profiles.registers import decode_block, encode_point, plan_reads
from device_profiles.schema import Profile, Severity

EXPECTED_IDS = {
    "arlight_dali_logic_lite",
    "renke_rs_gzws_n01",
    "sensecap_s_co2_03",
    "honeywell_midas_gas",
    "eastron_sdm120",
    "recording_room_controller",
}

#: points that are dimensionless or codes and so may have no unit (flags and enums are exempt)
UNITLESS_ALLOWED = {
    "eastron_sdm120": {"power_factor"},
    "honeywell_midas_gas": {"fault_number", "concentration_unit_code"},
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
            unitless = {p.name for p in profile.modbus.points
                        if not p.unit and p.bit is None and not p.nonzero}
        else:
            assert profile.mqtt is not None
            unitless = {p.name for p in profile.mqtt.points if not p.unit and p.type == "number"}
        assert unitless <= allowed, f"{profile.id}: {sorted(unitless - allowed)} need a unit"


def _rules(profile: Profile) -> dict[str, tuple[str, float, Severity]]:
    return {r.id: (r.op.value, r.threshold, r.severity) for r in profile.alerts}


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


@pytest.mark.parametrize("profile_id", sorted(EXPECTED_IDS - {"recording_room_controller"}))
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
