"""The Agent end to end: pymodbus device -> windows -> outbox -> Mosquitto hub listener."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from campus_config import ConfigError
from campus_forward.outbox import Outbox
from campus_protocol.messages import Health, State, Telemetry
from cloud_hub.broker import MosquittoBroker
from edge_agent.app import OUTBOX_FILE, Agent
from edge_agent.settings import AgentSettings
from tests.edge.support import PROFILE, VALUES, free_port, hub_listener, wait_until


def settings(
    broker: MosquittoBroker, data_dir: Path, devices: list[dict[str, Any]]
) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "gateway": {
                "id": "gw-1",
                "site": {"city_id": "c1", "district_id": "d1", "school_id": "s1"},
            },
            "hub": {
                "host": broker.host,
                "port": broker.port,
                "password": broker.password_for("gw-1"),
                "tls": {"ca_file": broker.ca_file},
            },
            "data_dir": data_dir,
            "window_s": 0.5,
            "heartbeat_s": 0.4,
            "devices": devices,
        }
    )


def meter(port: int, device_id: str = "lab-3-meter") -> dict[str, Any]:
    return {
        "id": device_id,
        "profile": PROFILE.id,
        "room": "lab-3",
        "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1},
    }


async def test_agent_forwards_closed_windows_and_heartbeats_then_stops_cleanly(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    agent = Agent(
        settings(mosquitto_broker, tmp_path, [meter(server.port)]),
        {PROFILE.id: PROFILE},
        stop_grace_s=2.0,
    )
    async with hub_listener(mosquitto_broker) as received:
        task = asyncio.create_task(agent.run())
        await wait_until(lambda: agent.messages_published.get("telemetry", 0) >= 2)
        loop = asyncio.get_running_loop()
        stop_at = loop.time()
        agent.request_stop()
        await asyncio.wait_for(task, 10)
        assert loop.time() - stop_at < 3
        await wait_until(lambda: bool(received) and received[-1].body == State(online=False))

    telemetry = [e.body for e in received if isinstance(e.body, Telemetry)]
    health = [e.body for e in received if isinstance(e.body, Health)]
    assert len(telemetry) == agent.windows_enqueued == agent.messages_published["telemetry"]
    for body in telemetry:
        assert body.device == "lab-3-meter" and body.room == "lab-3"
        assert (body.window_end - body.window_start).total_seconds() == 0.5
        assert body.points["power"].last == pytest.approx(VALUES["power"])
        assert body.points["temperature"].unit == "°C"
    assert health and health[-1].devices[0].status == "online"
    report = health[-1].outbox
    assert report is not None and report.budget_bytes == 1 << 30 and report.disk == "ok"
    assert report.discarded == {} and report.offline_autonomy_h is not None
    assert health[0].site.school_id == "s1"
    assert received[0].body == State(online=True)
    assert len({(e.node, e.seq) for e in received}) == len(received), "every seq is unique"
    with Outbox(tmp_path / OUTBOX_FILE) as outbox:
        assert outbox.depth() == 0


async def test_open_window_is_not_sent_on_stop(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    config = settings(mosquitto_broker, tmp_path, [meter(server.port)])
    agent = Agent(config.model_copy(update={"window_s": 3600.0}), {PROFILE.id: PROFILE})
    task = asyncio.create_task(agent.run())
    await wait_until(lambda: agent.aggregator.open_windows() == 1 and agent.uplink.connected)
    agent.request_stop()
    await asyncio.wait_for(task, 10)

    assert agent.windows_enqueued == 0
    assert "telemetry" not in agent.messages_published


async def test_dead_device_is_reported_offline_in_the_heartbeat(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    agent = Agent(
        settings(
            mosquitto_broker, tmp_path, [meter(server.port), meter(free_port(), "lab-3-dead")]
        ),
        {PROFILE.id: PROFILE},
    )
    task = asyncio.create_task(agent.run())
    await wait_until(
        lambda: (
            {d.device: d.status for d in agent.status().devices}
            == {"lab-3-meter": "online", "lab-3-dead": "offline"}
        )
    )
    status = agent.status()
    agent.request_stop()
    await asyncio.wait_for(task, 10)

    dead = next(d for d in status.devices if d.device == "lab-3-dead")
    assert "cannot connect" in dead.last_error and dead.failing_for_s is not None


def test_agent_refuses_a_device_whose_profile_is_unknown(tmp_path: Path) -> None:
    config = AgentSettings.model_validate(
        {
            "gateway": {
                "id": "gw-1",
                "site": {"city_id": "c", "district_id": "d", "school_id": "s"},
            },
            "development": True,
            "data_dir": tmp_path,
            "devices": [meter(502), {**meter(502, "other"), "profile": "cold_room_v9"}],
        }
    )
    with pytest.raises(ConfigError) as info:
        Agent(config, {PROFILE.id: PROFILE})

    assert str(info.value) == (
        'devices[1].profile: unknown profile "cold_room_v9" (known: test_meter)'
    )


def test_agent_refuses_a_modbus_device_with_an_mqtt_profile(tmp_path: Path) -> None:
    mqtt_profile = PROFILE.model_validate(
        {
            "id": "rec_controller",
            "name": "Recording controller",
            "domain": "recording",
            "protocol": "mqtt",
            "mqtt": {"points": [{"name": "state", "path": "state"}]},
        }
    )
    config = AgentSettings.model_validate(
        {
            "gateway": {
                "id": "gw-1",
                "site": {"city_id": "c", "district_id": "d", "school_id": "s"},
            },
            "development": True,
            "data_dir": tmp_path,
            "devices": [{**meter(502), "profile": "rec_controller"}],
        }
    )
    with pytest.raises(ConfigError, match=r"devices\[0\]\.modbus: profile \"rec_controller\" "):
        Agent(config, {"rec_controller": mqtt_profile})
