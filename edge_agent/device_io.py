"""``DeviceIO`` over the agent's sources: Modbus writes go through each device's coordinator
(``write_point``, serialised with its polling), read-backs are a fresh poll of the device;
``RoutedDeviceIO`` sends each device to the IO of its protocol (MQTT: ``mqtt_device_io``), and a
device it has no route for (one an MQTT group found) to its fallback."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge_agent.actions import DeviceIO, WriteAttempt
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

    async def read_back(
        self, device: str, confirms: Callable[[Mapping[str, float]], bool]
    ) -> dict[str, float]:
        """One fresh poll (a polled device's values do not change while waiting)."""
        try:
            reading = await self._coordinator(device).refresh()
        except ModbusSourceError as exc:
            raise OSError(str(exc)) from exc
        return dict(reading.values)


class RoutedDeviceIO:
    """Each device's writes and read-backs through the IO of its protocol."""

    def __init__(self, routes: Mapping[str, DeviceIO], fallback: DeviceIO | None = None) -> None:
        self.routes = dict(routes)
        self.fallback = fallback

    async def write_point(self, device: str, point: str, value: float) -> WriteAttempt:
        io = self.routes.get(device, self.fallback)
        if io is None:
            return WriteAttempt(
                ok=False, detail=f"{device}: no writable connection on this gateway"
            )
        return await io.write_point(device, point, value)

    async def read_back(
        self, device: str, confirms: Callable[[Mapping[str, float]], bool]
    ) -> dict[str, float]:
        io = self.routes.get(device, self.fallback)
        if io is None:
            raise OSError(f"{device}: no connection on this gateway")
        return await io.read_back(device, confirms)
