"""``DeviceIO`` over the agent's sources: Modbus writes go through each device's coordinator
(``write_point``, serialised with its polling), read-backs are a fresh poll of the device."""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.actions import WriteAttempt
from edge_agent.sources.modbus import DeviceCoordinator, ModbusSourceError


class NotWritable(LookupError):
    """The device is not one this gateway can write (unknown, or reached over MQTT)."""


class ModbusDeviceIO:
    """Writes and reads Modbus devices through their coordinators."""

    def __init__(self, coordinators: Mapping[str, DeviceCoordinator]) -> None:
        self.coordinators = dict(coordinators)

    def _coordinator(self, device: str) -> DeviceCoordinator:
        coordinator = self.coordinators.get(device)
        if coordinator is None:
            raise NotWritable(f"{device}: not a Modbus device of this gateway")
        return coordinator

    async def write_point(self, device: str, point: str, value: float) -> WriteAttempt:
        try:
            coordinator = self._coordinator(device)
        except NotWritable as exc:
            return WriteAttempt(ok=False, detail=str(exc))
        result = await coordinator.write_point(point, value)
        return WriteAttempt(ok=result.ok, detail=result.detail, read_back=result.read_back)

    async def read(self, device: str) -> dict[str, float]:
        try:
            reading = await self._coordinator(device).refresh()
        except ModbusSourceError as exc:
            raise OSError(str(exc)) from exc
        return dict(reading.values)
