"""Safety scenarios that write to MQTT site devices (Zigbee2MQTT convention: ``<topic>/set``,
confirmed by the state report): a hub command dims a classroom's Zigbee dimmer, read back at the
device, whether the dimmer is configured or found by an ``mqtt_groups`` pattern (and refused,
saying why, when a restarted gateway's group has not heard it since); a gas leak with the uplink
down switches a Zigbee relay's ventilation fan on; a dimmer that ignores commands ends ``failed``
after the bounded retries. Real Mosquitto, simulators, agent and hub; outcomes asserted exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest

from cloud_hub.broker import MosquittoBroker
from simulators.faults import Fault, FaultKind
from tests.scenarios.support import GATEWAY, Dev, Hub, eventually, running_hub, school
from tests.scenarios.test_action_scenarios import local_command_id, record_ingest

MQTT_VENTILATION = {
    "id": "lab_fan",
    "when": {"rule": "gas_level_1", "room": "chem-lab"},
    "run": {"device": "lab-fan", "action": "relay_on"},
    "on_clear": {"device": "lab-fan", "action": "relay_off"},
}
PANEL = Dev("r101-panel", "tuya_ts0601_dimmer", "room-101",
            {"state": 1, "brightness": 200, "linkquality": 96}, confirm_s=0.5)  # fmt: skip


def send(hub: Hub, device: str, point: str, value: float) -> str:
    response = hub.api.post(
        f"/api/v1/devices/{device}/commands", json={"point": point, "value": value}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("grouped", [False, True], ids=["configured", "found-by-a-group"])
async def test_a_hub_command_dims_a_zigbee_dimmer_read_back_from_its_state_report(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, grouped: bool
) -> None:
    panel = replace(PANEL, grouped=grouped)
    dimmers = {"profile": PANEL.profile, "topic": "school/{device}", "room": PANEL.room}
    with running_hub(mosquitto_broker, tmp_path) as hub:
        async with school(
            mosquitto_broker, tmp_path, [panel], hub=hub, mqtt_groups=[dimmers] if grouped else []
        ) as s:
            await eventually(lambda: hub.get("/api/v1/devices")["count"] == 1)
            command_id = send(hub, "r101-panel", "brightness", 80)
            await eventually(
                lambda: hub.get(f"/api/v1/commands/{command_id}")["status"] == "succeeded"
            )
            final = hub.get(f"/api/v1/commands/{command_id}")
            brightness = s.value("r101-panel", "brightness")

    assert (final["gateway_id"], final["target"], final["readback"], final["detail"]) == (
        GATEWAY,
        "brightness",
        80.0,
        "written and read back",
    )
    assert final["attempts"] == 1
    assert brightness == 80


async def test_a_group_dimmer_not_heard_since_the_gateway_restarted_is_refused_saying_why(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    panel = replace(PANEL, grouped=True)
    dimmers = {"profile": PANEL.profile, "topic": "school/{device}", "room": PANEL.room}
    with running_hub(mosquitto_broker, tmp_path) as hub:
        async with school(mosquitto_broker, tmp_path, [panel], hub=hub, mqtt_groups=[dimmers]):
            await eventually(lambda: hub.get("/api/v1/devices")["count"] == 1)
        async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port or 0) as c:
            await c.publish("school/r101-panel", b"", qos=1, retain=True)  # its state is gone
        async with school(mosquitto_broker, tmp_path, [], hub=hub, mqtt_groups=[dimmers]) as s:
            await eventually(lambda: s.agent.uplink.connected)
            command_id = send(hub, "r101-panel", "brightness", 80)
            await eventually(
                lambda: hub.get(f"/api/v1/commands/{command_id}")["status"] == "failed"
            )
            final = hub.get(f"/api/v1/commands/{command_id}")

    assert (final["status"], final["attempts"], final["detail"]) == (
        "failed",
        0,
        "no device 'r101-panel' on this gateway: not seen yet on MQTT group 'school/{device}',"
        " whose devices take commands once they have reported",
    )


async def test_gas_leak_with_the_uplink_down_switches_a_zigbee_fan_relay_on(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("lab-gas", "honeywell_midas_gas", "chem-lab", {"concentration": 2.0}),
        Dev("lab-fan", "sonoff_zbmini", "chem-lab", {"state": 0, "linkquality": 120}),
    ]
    school_broker = MosquittoBroker(workdir=tmp_path / "site-broker", tls=False)
    school_broker.start()
    try:
        with running_hub(mosquitto_broker, tmp_path) as hub:
            ingested = record_ingest(hub.api)
            async with school(
                mosquitto_broker, tmp_path, devices, hub=hub, site=school_broker,
                local_actions=[MQTT_VENTILATION],
            ) as s:  # fmt: skip
                await eventually(lambda: s.agent.uplink.connected)
                mosquitto_broker.stop()  # the uplink goes down; the school's broker stays up
                await eventually(lambda: not s.agent.uplink.connected, 15)
                s.set("lab-gas", concentration=30.0)  # level 1: 25 %LEL
                await eventually(lambda: s.value("lab-fan", "state") == 1.0)
                await eventually(lambda: s.agent.events_enqueued == 1)
                fan_on_while_down = not s.agent.uplink.connected
                mosquitto_broker.start()  # the uplink returns
                await eventually(lambda: s.agent.outbox.depth() == 0, 20)
                await eventually(lambda: any(k == "cmdres" for k, _ in ingested))
                await eventually(lambda: bool(hub.alerts()))
                record = hub.get("/api/v1/commands/" + local_command_id(ingested))
                alerts = hub.alerts()
    finally:
        school_broker.stop()

    assert fan_on_while_down

    assert (record["origin"], record["target"], record["status"], record["readback"]) == (
        "local",
        "relay_on",
        "succeeded",
        1.0,
    )
    assert alerts == [("lab-gas", "gas_level_1", "II", "open")]
    assert s.devices["lab-fan"].writes == 1


async def test_a_dimmer_that_ignores_commands_ends_failed_with_what_it_reports(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    with running_hub(mosquitto_broker, tmp_path) as hub:
        async with school(mosquitto_broker, tmp_path, [PANEL], hub=hub) as s:
            await eventually(lambda: hub.get("/api/v1/devices")["count"] == 1)
            s.devices["r101-panel"].set_fault(Fault(FaultKind.IGNORE_WRITES))
            command_id = send(hub, "r101-panel", "state", 0)
            await eventually(
                lambda: hub.get(f"/api/v1/commands/{command_id}")["status"] == "failed", 20
            )
            final = hub.get(f"/api/v1/commands/{command_id}")
            writes = s.devices["r101-panel"].writes

    assert (final["status"], final["readback"]) == ("failed", 1.0)
    assert final["detail"] == "r101-panel: state reads 1.0 (wanted 0)"
    assert writes == 3  # one set command per attempt: the bounded retries, no more
