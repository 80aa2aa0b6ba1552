"""The agent raises graded events from its rules on readings as they are polled, and they reach
the hub broker (real pymodbus device, real Mosquitto, the bundled gas detector profile)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from campus_config import ConfigError
from campus_protocol.messages import Event
from cloud_hub.broker import MosquittoBroker
from device_profiles.loader import load_profiles
from edge_agent.app import Agent
from edge_agent.settings import AgentSettings
from tests.edge.support import hub_listener, wait_until
from tests.edge.test_agent import settings
from tests.waiting import DEADLINE_S

GAS = "honeywell_midas_gas"


def gas_detector(port: int) -> dict[str, Any]:
    return {
        "id": "lab-3-gas",
        "profile": GAS,
        "room": "lab-3",
        "modbus": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.1},
    }


async def test_gas_levels_raise_ii_then_i_and_clear_as_polled(
    mosquitto_broker: MosquittoBroker, modbus_server: Any, tmp_path: Path
) -> None:
    profiles = load_profiles()
    server = await modbus_server(profiles[GAS], {"concentration": 5.0})
    agent = Agent(settings(mosquitto_broker, tmp_path, [gas_detector(server.port)]), profiles)
    async with hub_listener(mosquitto_broker) as received:
        task = asyncio.create_task(agent.run())

        def events() -> list[tuple[str, str, str]]:
            return [
                (e.body.rule, e.body.state.value, e.body.severity.value)
                for e in received
                if isinstance(e.body, Event)
            ]

        await asyncio.wait_for(agent.ready.wait(), DEADLINE_S)
        server.set_value(profiles[GAS], "concentration", 30.0)
        await wait_until(lambda: len(events()) == 1)
        server.set_value(profiles[GAS], "concentration", 55.0)
        await wait_until(lambda: len(events()) == 2)
        server.set_value(profiles[GAS], "concentration", 48.0)  # inside the 3 %LEL hysteresis
        await wait_until(lambda: agent.latest["lab-3-gas"].values["concentration"] == 48.0)
        server.set_value(profiles[GAS], "concentration", 5.0)
        await wait_until(lambda: len(events()) == 4)
        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)

    assert events() == [
        ("gas_level_1", "raised", "II"),
        ("gas_level_2", "raised", "I"),
        ("gas_level_1", "cleared", "II"),
        ("gas_level_2", "cleared", "I"),
    ]
    first = next(e.body for e in received if isinstance(e.body, Event))
    assert (first.device, first.value, first.threshold) == ("lab-3-gas", 30.0, 25.0)
    assert "GB/T 50493-2019" in first.standard


def test_a_bad_rule_override_stops_the_agent_at_start_naming_the_field(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    data = settings(mosquitto_broker, tmp_path, [gas_detector(1502)]).model_dump()
    data["rules"] = [{"match": {"device": "lab-3-gas"}, "rule": {"id": "gas_level_1", "op": "~"}}]
    bad = AgentSettings.model_validate(data)
    with pytest.raises(ConfigError, match=r"rules\[0\]\.rule\.op: Input should be"):
        Agent(bad, load_profiles())
