"""Devices an MQTT group finds take writes with the same checks as configured ones, once the
group has heard them; until then (or when they cannot be written) the refusal names the device
and says why. The checks happen before anything is published (no broker needed here; commands
over a real broker are in ``test_mqtt_commands``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from device_profiles.loader import load_profiles
from device_profiles.schema import Profile
from edge_agent.actions import ActionRunner, WriteRefused
from edge_agent.app import action_runner, build_sources
from edge_agent.rules import RuleStore
from edge_agent.settings import AgentSettings, check_device_profiles
from edge_agent.sources.base import Reading
from edge_agent.sources.mqtt_site import MqttSiteSource

PROFILES = load_profiles()
DIMMERS = {"profile": "tuya_ts0601_dimmer", "topic": "zigbee2mqtt/{device}", "room": "r101"}
DIMMER_STATE = orjson.dumps({"state": "ON", "brightness": 200, "linkquality": 96})


def agent_settings(tmp_path: Path, **fields: Any) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "gateway": {
                "id": "gw-1",
                "site": {"city_id": "c", "district_id": "d", "school_id": "s"},
            },
            "hub": {"password": "a-real-secret"},
            "data_dir": str(tmp_path / "data"),
            **fields,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RuleStore]:
    store = RuleStore(tmp_path / "rules.sqlite3")
    yield store
    store.close()


def site_and_runner(
    settings: AgentSettings, store: RuleStore, profiles: dict[str, Profile] = PROFILES
) -> tuple[MqttSiteSource, ActionRunner]:
    modbus, site = build_sources(settings, profiles)
    assert site is not None
    return site, action_runner(settings, profiles, modbus, site, store)


def heard(site: MqttSiteSource, topic: str, payload: bytes = DIMMER_STATE) -> list[Reading]:
    readings: list[Reading] = []
    site.handle(topic, payload, readings.append)
    return readings


def refusal(runner: ActionRunner, device: str, point: str, value: object) -> tuple[str, str]:
    with pytest.raises(WriteRefused) as refused:
        runner.plan_write(device, point, value)
    return refused.value.reason, str(refused.value)


def test_a_group_device_is_checked_like_a_configured_one_once_its_group_has_heard_it(
    tmp_path: Path, store: RuleStore
) -> None:
    site, runner = site_and_runner(agent_settings(tmp_path, mqtt_groups=[DIMMERS]), store)

    before = refusal(runner, "r102-panel", "brightness", 80)
    heard(site, "zigbee2mqtt/r102-panel")
    plan = runner.plan_write("r102-panel", "brightness", 80)
    action = runner.plan_action("r102-panel", "emergency_scene")

    assert before == (
        "unknown_device",
        "no device 'r102-panel' on this gateway: not seen yet on MQTT group"
        " 'zigbee2mqtt/{device}', whose devices take commands once they have reported",
    )
    assert (plan.target, plan.value, action.target) == ("brightness", 80.0, "emergency_scene")
    assert refusal(runner, "r102-panel", "brightness", 300) == (
        "out_of_range",
        "r102-panel.brightness: 300 outside 0..254",
    )
    assert refusal(runner, "r102-panel", "linkquality", 1) == (
        "read_only",
        "r102-panel: point 'linkquality' is read-only",
    )
    assert list(runner.profiles) == ["r102-panel"]


def test_a_device_id_no_group_could_find_is_simply_unknown(
    tmp_path: Path, store: RuleStore
) -> None:
    group = {**DIMMERS, "id_prefix": "z-"}
    _, runner = site_and_runner(agent_settings(tmp_path, mqtt_groups=[group]), store)

    assert refusal(runner, "r102-panel", "brightness", 80) == (
        "unknown_device",
        "no device 'r102-panel' on this gateway",
    )


def test_a_full_group_refuses_a_device_it_will_never_take(tmp_path: Path, store: RuleStore) -> None:
    group = {**DIMMERS, "max_devices": 1}
    site, runner = site_and_runner(agent_settings(tmp_path, mqtt_groups=[group]), store)
    heard(site, "zigbee2mqtt/r101-panel")
    heard(site, "zigbee2mqtt/r102-panel")

    assert refusal(runner, "r102-panel", "brightness", 80) == (
        "unknown_device",
        "no device 'r102-panel' on this gateway: MQTT group 'zigbee2mqtt/{device}' is full"
        " (max_devices 1)",
    )


def test_a_group_of_read_only_devices_refuses_writes_naming_the_device_and_its_profile(
    tmp_path: Path, store: RuleStore
) -> None:
    group = {"profile": "recording_room_controller", "topic": "rec/{device}/status", "room": "r1"}
    site, runner = site_and_runner(agent_settings(tmp_path, mqtt_groups=[group]), store)
    heard(site, "rec/rec-1/status", b"{}")

    assert refusal(runner, "rec-1", "recording", 1) == (
        "read_only",
        "rec-1: its profile 'recording_room_controller' has nothing writable",
    )
    with pytest.raises(WriteRefused, match=r"rec-1: its profile .* has nothing writable"):
        runner.plan_action("rec-1", "start")


def test_an_id_a_configured_device_has_is_not_taken_again_by_a_group(
    tmp_path: Path, store: RuleStore
) -> None:
    configured = {
        "id": "r101-panel",
        "profile": "tuya_ts0601_dimmer",
        "room": "r101",
        "mqtt": {"topic": "lights/r101-panel"},
    }
    settings = agent_settings(tmp_path, devices=[configured], mqtt_groups=[DIMMERS])
    site, runner = site_and_runner(settings, store)

    from_group = heard(site, "zigbee2mqtt/r101-panel")
    from_device = heard(site, "lights/r101-panel")

    assert (from_group, [r.device for r in from_device]) == ([], ["r101-panel"])
    assert site.members == []
    assert list(runner.profiles) == ["r101-panel"]


def test_a_commandable_groups_topic_must_end_in_its_profiles_state_suffix() -> None:
    raw = PROFILES["tuya_ts0601_dimmer"].model_dump(mode="json", exclude_none=True)
    raw["id"], raw["mqtt"]["topic_suffix"] = "dimmer_state", "state"
    profiles = {"dimmer_state": Profile.model_validate(raw)}

    def errors(topic: str) -> list[str]:
        group = {"profile": "dimmer_state", "topic": topic, "room": "r1"}
        settings = agent_settings(Path("/nonexistent"), mqtt_groups=[group])
        return check_device_profiles(settings, profiles)

    assert errors("lights/{device}/state") == []
    assert errors("lights/{device}") == [
        'mqtt_groups[0].topic: profile "dimmer_state" reports on <device>/state and takes'
        ' commands on <device>/set, so the topic must end in "/state"'
    ]
