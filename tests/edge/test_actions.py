"""Local actions against a real simulated relay module: run once per raised event (not again on
repeats or flapping), released on clear, held off by a manual override, every run audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campus_protocol.messages import CommandResult, Event, EventState, Severity
from device_profiles.loader import load_profiles
from edge_agent.actions import ActionRunner
from edge_agent.app import build_sources
from edge_agent.device_io import ModbusDeviceIO
from edge_agent.local_actions import LocalActions
from edge_agent.rules import Firing, Report, RuleStore
from edge_agent.rules.config import LocalAction
from edge_agent.settings import AgentSettings
from simulators.devices import SimulatedDevice
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.signals import SimClock

PROFILES = load_profiles()
VENTILATION = LocalAction.model_validate(
    {
        "id": "ventilation",
        "when": {"rule": "gas_level_1"},
        "run": {"device": "relay", "action": "relay_1_on"},
        "on_clear": {"device": "relay", "action": "relay_1_off"},
    }
)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[SimulatedDevice, ActionRunner]]:
    device = SimulatedDevice("relay", PROFILES["eletechsup_8ch_relay"], seed=1)
    async with ModbusSimServer([ServedUnit(1, device)], clock=SimClock()) as server:
        settings = AgentSettings.model_validate(
            {
                "gateway": {"id": "gw-1", "site": {"city_id": "c", "district_id": "d",
                                                   "school_id": "s"}},
                "development": True,
                "devices": [{"id": "relay", "profile": "eletechsup_8ch_relay", "room": "lab",
                             "modbus": {"host": "127.0.0.1", "port": server.port}}],
            }
        )  # fmt: skip
        modbus, _ = build_sources(settings, PROFILES)
        assert modbus is not None
        store = RuleStore(tmp_path / "rules.sqlite3")
        runner = ActionRunner(
            io=ModbusDeviceIO({c.device_id: c for c in modbus.coordinators}),
            profiles={"relay": PROFILES["eletechsup_8ch_relay"]},
            store=store,
        )
        yield device, runner
        for coordinator in modbus.coordinators:
            coordinator.close()
        store.close()


def firing(report: Report) -> Firing:
    event = Event(
        rule="gas_level_1", device="lab-gas", point="concentration",
        state=EventState.CLEARED if report is Report.CLEAR else EventState.RAISED,
        severity=Severity.II, value=30, threshold=25, standard="GB/T 50493-2019",
        at=datetime.now(UTC), flapping=report is Report.FLAPPING,
    )  # fmt: skip
    return Firing(event=event, report=report, device="lab-gas", room="lab")


async def test_an_action_runs_once_per_event_and_is_released_on_clear(
    relay: tuple[SimulatedDevice, ActionRunner],
) -> None:
    device, runner = relay
    reported: list[CommandResult] = []
    actions = LocalActions([VENTILATION], runner, lambda r: reported.append(r) or True)

    for report in (Report.RAISE, Report.REPEAT, Report.FLAPPING):
        actions.on_firing(firing(report))
        await actions.wait_idle()
    assert (device.writes, device.read(datetime.now())["relay_1"]) == (1, 1.0)
    actions.on_firing(firing(Report.CLEAR))
    await actions.wait_idle()
    assert (device.writes, device.read(datetime.now())["relay_1"]) == (2, 0.0)
    actions.on_firing(firing(Report.RAISE))  # a new event: runs again
    await actions.wait_idle()

    assert [(r.target, r.status, r.readback) for r in reported] == [
        ("relay_1_on", "succeeded", 1.0),
        ("relay_1_off", "succeeded", 0.0),
        ("relay_1_on", "succeeded", 1.0),
    ]
    assert all(r.origin == "local" and r.id.startswith("local-") for r in reported)
    assert [r["status"] for r in runner.store.audit_records()] == ["succeeded"] * 3


async def test_a_manual_override_holds_automatic_actions_off(
    relay: tuple[SimulatedDevice, ActionRunner],
) -> None:
    device, runner = relay
    manual = await runner.execute(
        "relay", runner.plan_action("relay", "relay_1_off"), origin="technician", ref="li",
        manual=True,
    )  # fmt: skip
    assert manual.ok
    reported: list[CommandResult] = []
    actions = LocalActions([VENTILATION], runner, lambda r: reported.append(r) or True)
    actions.on_firing(firing(Report.RAISE))
    await actions.wait_idle()

    assert device.read(datetime.now())["relay_1"] == 0.0
    assert device.writes == 1  # only the technician's
    [held] = reported
    assert held.status == "rejected"
    assert "held off by a manual override until" in held.detail
