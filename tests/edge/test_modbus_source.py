"""DeviceCoordinator against a real pymodbus server on a free port."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from device_profiles.loader import load_profiles
from edge_agent.settings import DeviceConfig
from edge_agent.sources.base import Reading
from edge_agent.sources.modbus import (
    DeviceCoordinator,
    ModbusConnectError,
    ModbusReadError,
    ModbusSource,
    build_coordinators,
)
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.signals import SimClock
from tests.edge.support import PROFILE, VALUES, free_port


def device(port: int, **modbus: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "id": "lab-3-meter",
            "profile": PROFILE.id,
            "room": "lab-3",
            "modbus": {"host": "127.0.0.1", "port": port, **modbus},
        }
    )


async def test_refresh_decodes_every_point_with_scale_and_type(modbus_server: Any) -> None:
    server = await modbus_server(PROFILE, VALUES)
    coordinator = DeviceCoordinator(device(server.port), PROFILE)

    reading = await coordinator.refresh()

    assert reading.device == "lab-3-meter"
    assert reading.values == pytest.approx(VALUES, rel=1e-6)
    assert coordinator.available and coordinator.snapshot == reading
    assert coordinator.consecutive_failures == 0 and coordinator.last_ok_at == reading.at
    coordinator.close()


async def test_one_request_per_contiguous_block(modbus_server: Any) -> None:
    server = await modbus_server(PROFILE, VALUES)
    coordinator = DeviceCoordinator(device(server.port), PROFILE)

    await coordinator.refresh()

    assert sorted(server.requests) == [
        ("ReadHoldingRegistersRequest", 0, 6),
        ("ReadHoldingRegistersRequest", 100, 3),
        ("ReadInputRegistersRequest", 300, 2),
    ]
    coordinator.close()


async def test_sentinel_value_is_skipped_and_counted(modbus_server: Any) -> None:
    server = await modbus_server(PROFILE, {**VALUES, "lux": 65535})
    coordinator = DeviceCoordinator(device(server.port), PROFILE)

    reading = await coordinator.refresh()

    assert "lux" not in reading.values
    assert reading.values["level"] == 200
    assert coordinator.state.invalid_values == 1
    coordinator.close()


async def test_exception_response_marks_device_offline_then_recovers(
    modbus_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    coordinator = DeviceCoordinator(device(server.port, unit_id=1), PROFILE)
    await coordinator.refresh()

    server.fail_with = ExcCodes.ILLEGAL_ADDRESS
    caplog.set_level(logging.INFO, logger="edge_agent.sources.modbus")
    for _ in range(3):
        with pytest.raises(ModbusReadError) as info:
            await coordinator.refresh()

    error = info.value
    assert (error.device, error.unit, error.address, error.code) == ("lab-3-meter", 1, 0, 2)
    assert "illegal data address" in str(error)
    assert not coordinator.available
    assert coordinator.consecutive_failures == 3
    assert coordinator.last_exception is error
    assert coordinator.snapshot is not None and coordinator.snapshot.values["level"] == 200
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "only the OK -> failing change is logged at error"

    server.fail_with = None
    server.set_value(PROFILE, "level", 10)
    reading = await coordinator.refresh()

    assert coordinator.available and coordinator.consecutive_failures == 0
    assert reading.values["level"] == 10
    assert sum("recovered" in r.getMessage() for r in caplog.records) == 1
    coordinator.close()


async def test_exception_response_retries_at_poll_interval_not_backoff(modbus_server: Any) -> None:
    server = await modbus_server(PROFILE, VALUES)
    server.fail_with = ExcCodes.DEVICE_BUSY
    coordinator = DeviceCoordinator(device(server.port), PROFILE)
    for _ in range(4):
        with pytest.raises(ModbusReadError) as info:
            await coordinator.refresh()

    assert info.value.error_type == "server_device_busy"
    assert coordinator.retry_delay(info.value) == coordinator.poll_interval_s
    coordinator.close()


async def test_unreachable_device_fails_with_connect_error_and_backs_off() -> None:
    coordinator = DeviceCoordinator(device(free_port()), PROFILE, backoff_max_s=1.0)
    delays = []
    for _ in range(5):
        with pytest.raises(ModbusConnectError) as info:
            await coordinator.refresh()
        delays.append(coordinator.retry_delay(info.value))

    assert coordinator.state.status.value == "offline"
    assert delays[0] == pytest.approx(0.2, rel=0.11)
    assert delays[1] == pytest.approx(0.4, rel=0.11)
    assert max(delays) <= 1.1, "backoff is capped"


async def test_silent_device_costs_one_timeout_and_others_keep_polling(modbus_server: Any) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(30)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    good_server = await modbus_server(PROFILE, VALUES)
    dead = DeviceCoordinator(device(silent_port, timeout_s=0.3), PROFILE)
    good_config = device(good_server.port).model_copy(update={"id": "lab-3-good"})
    good = DeviceCoordinator(good_config, PROFILE)
    readings: list[Reading] = []
    source = ModbusSource([dead, good])

    loop = asyncio.get_running_loop()
    started = loop.time()
    await source.start(readings.append)
    await asyncio.sleep(1.6)
    await source.stop()
    silent.close()

    assert loop.time() - started < 2.5
    assert not dead.available and dead.last_exception is not None
    assert "no response within 0.3 s" in str(dead.last_exception)
    assert {r.device for r in readings} == {"lab-3-good"}
    assert len(readings) >= 3, "the healthy device kept its 0.2 s cadence"


@pytest.mark.parametrize("cancel_after_s", [0.1, 0.3])
async def test_stop_ends_polling_even_while_a_request_is_in_flight(cancel_after_s: float) -> None:
    """pymodbus may turn a cancelled request into an I/O error; stop() must still end the task."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(30)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    coordinator = DeviceCoordinator(device(port, timeout_s=0.2, poll_interval_s=0.05), PROFILE)
    source = ModbusSource([coordinator])
    await source.start(lambda reading: None)
    await asyncio.sleep(1.0 + cancel_after_s)  # past the random first tick, mid-request
    loop = asyncio.get_running_loop()
    started = loop.time()
    await source.stop()
    silent.close()
    assert loop.time() - started < 1.0
    assert all(task.done() for task in asyncio.all_tasks() if "modbus" in task.get_name())


def test_links_built_together_take_turns_to_connect_through_one_gate() -> None:
    from edge_agent.sources.modbus_link import MAX_CONNECTING

    coordinators = build_coordinators([(device(port), PROFILE) for port in (5020, 5021, 5022)])

    gates = {id(c.link.connect_gate) for c in coordinators}
    assert len(gates) == 1 and len({id(c.link) for c in coordinators}) == 3
    gate = coordinators[0].link.connect_gate
    assert gate is not None and gate._value == MAX_CONNECTING


async def test_a_slow_device_and_a_refusing_one_leave_the_healthy_device_at_its_poll_rate(
    modbus_server: Any,
) -> None:
    healthy, slow, refusing = [await modbus_server(PROFILE, VALUES) for _ in range(3)]
    slow.delay_s = 0.3  # three blocks per poll: 0.9 s of answers for a 0.2 s interval
    refusing.fail_with = ExcCodes.ILLEGAL_ADDRESS
    source = ModbusSource(
        [
            DeviceCoordinator(
                DeviceConfig.model_validate(
                    {
                        "id": name,
                        "profile": PROFILE.id,
                        "room": "lab-3",
                        "modbus": {"host": "127.0.0.1", "port": server.port},
                    }
                ),
                PROFILE,
            )
            for name, server in (("healthy", healthy), ("slow", slow), ("refusing", refusing))
        ]
    )
    readings: list[Reading] = []

    await source.start(readings.append)
    await asyncio.sleep(2.0)
    await source.stop()

    per_device = Counter(r.device for r in readings)
    assert per_device["healthy"] >= 6, per_device  # 0.2 s interval over 2 s: about 10
    assert 1 <= per_device["slow"] <= 3, per_device
    assert per_device["refusing"] == 0
    assert isinstance(source.coordinator("refusing").last_exception, ModbusReadError)


@pytest.mark.parametrize(
    "dead",
    [
        "stopped",  # its unit stops answering: the gateway stays silent, requests time out
        "absent",  # nothing at its unit id: the gateway answers 0x0B (target failed to respond)
    ],
)
async def test_a_dead_unit_behind_a_gateway_backs_off_and_its_neighbours_stay_online(
    dead: str,
) -> None:
    """Three units on one Modbus TCP connection to a simulated gateway, one of them dead."""
    profiles = load_profiles()
    kinds = {"gas": "honeywell_midas_gas", "meter": "eastron_sdm120",
             "air": "sensecap_s_co2_03"}  # fmt: skip
    units = {"gas": 3, "meter": 4, "air": 45}
    served = [
        ServedUnit(units[name], SimulatedDevice(name, profiles[kind], seed=units[name]))
        for name, kind in kinds.items()
    ]
    if dead == "absent":
        units["gas"] = 9  # configured at a unit id the gateway has nothing behind
    server = ModbusSimServer(served, clock=SimClock())
    await server.start()
    server.device(3).set_fault(Fault(FaultKind.OFFLINE) if dead == "stopped" else None)
    configs = [
        DeviceConfig.model_validate(
            {"id": name, "profile": kind, "room": "lab1",
             "modbus": {"host": "127.0.0.1", "port": server.port, "unit_id": units[name],
                        "poll_interval_s": 0.5, "timeout_s": 0.3}}
        )
        for name, kind in kinds.items()
    ]  # fmt: skip
    coordinators = build_coordinators([(c, profiles[c.profile]) for c in configs])
    assert len({id(c.link) for c in coordinators}) == 1, "one shared connection"
    source = ModbusSource(coordinators)
    readings: list[Reading] = []
    neighbours_offline: set[str] = set()

    await source.start(readings.append)
    for _ in range(40):  # 4 s
        await asyncio.sleep(0.1)
        neighbours_offline |= {
            c.device_id for c in coordinators if c.device_id != "gas" and c.state.available is False
        }
    await source.stop()
    await server.stop()

    per_device = Counter(r.device for r in readings)
    assert neighbours_offline == set()
    assert per_device["meter"] >= 5 and per_device["air"] >= 5, per_device  # about 8 each
    gas = source.coordinator("gas")
    assert per_device["gas"] == 0 and not gas.available
    # backed off: attempts about 0, 0.5, 1.5 and 3.5 s in, not every 0.5 s
    assert 2 <= gas.consecutive_failures <= 5, gas.last_exception
