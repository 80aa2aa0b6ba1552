"""What one ingest batch knows about the database, layered like its transaction.

Each mapping is a ``ChainMap`` of three layers: the message being stored (its SAVEPOINT), the
messages of this batch already stored (released savepoints), and what was known before the batch.
A rolled-back savepoint drops its layer, so nothing it created lingers; the worker's caches learn
the batch's layer only after COMMIT.
"""

from __future__ import annotations

from collections import ChainMap
from datetime import datetime
from typing import Any

from cloud_hub.db.alerts import AlertKey

DeviceKey = tuple[str, str]  # (gateway node, device key)


class BatchView:
    """Device ids, known gateways, active alerts and newest windows as seen inside one batch."""

    def __init__(
        self,
        *,
        devices: dict[DeviceKey, int],
        gateways: dict[str, bool],
        active_alerts: dict[AlertKey, bool],
    ) -> None:
        self._durable_devices = devices
        self._durable_gateways = gateways
        self.devices: ChainMap[DeviceKey, int] = ChainMap({}, {}, devices)
        self.gateways: ChainMap[str, bool] = ChainMap({}, {}, gateways)
        # whether an active alert's condition is present: read from the database at the start of
        # the batch (``alerts.active_conditions``), then as the batch raises and clears
        self.alerts: ChainMap[AlertKey, bool] = ChainMap({}, {}, active_alerts)
        self.newest: ChainMap[int, datetime] = ChainMap({}, {}, {})  # device id -> window end

    def _layers(self) -> tuple[ChainMap[Any, Any], ...]:
        return (self.devices, self.gateways, self.alerts, self.newest)

    def saw_window(self, device_id: int, end: datetime) -> None:
        top = self.newest.maps[0]  # the message's layer: the whole batch in a set-based pass
        newest = top.get(device_id)
        if newest is None:
            newest = self.newest.get(device_id)  # ChainMap.get is several times slower
        if newest is None or end > newest:
            top[device_id] = end

    def release(self) -> None:
        """The message's savepoint was released: its changes belong to the batch."""
        for layer in self._layers():
            layer.maps[1].update(layer.maps[0])
            layer.maps[0].clear()

    def rollback(self) -> None:
        """The message's savepoint was rolled back: forget what it created or changed."""
        for layer in self._layers():
            layer.maps[0].clear()

    def commit(self) -> None:
        """The batch committed: the worker's caches keep the ids it learned."""
        self._durable_devices.update(self.devices.maps[1])
        self._durable_gateways.update(self.gateways.maps[1])
