"""What the status page and ``campus agent`` commands show about a running agent: the
snapshot the agent takes on request, and one row per device."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from campus_forward.metrics import BudgetReport
from edge_agent.sources.base import DeviceState


@dataclass(frozen=True, kw_only=True)
class DeviceStatusView:
    """One row of the status page."""

    device: str
    profile: str
    room: str
    room_name: str
    protocol: str
    status: str
    last_ok_at: float | None
    consecutive_failures: int
    last_error: str
    failing_for_s: float | None
    invalid_values: int
    values: dict[str, float] = field(default_factory=dict)  # the newest reading
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        state: DeviceState,
        now: float,
        *,
        values: Mapping[str, float] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> DeviceStatusView:
        return cls(
            device=state.device,
            profile=state.profile,
            room=state.room,
            room_name=state.room_name,
            protocol=state.protocol,
            status=state.status.value,
            last_ok_at=state.last_ok_at,
            consecutive_failures=state.consecutive_failures,
            last_error=state.last_error,
            failing_for_s=state.failing_for_s(now),
            invalid_values=state.invalid_values,
            values=dict(values or {}),
            units=dict(units or {}),
        )


@dataclass(frozen=True, kw_only=True)
class StatusSnapshot:
    """What the status page and ``campus agent`` commands show about a running agent."""

    gateway: str
    started_at: float
    taken_at: float = field(default_factory=time.time)
    devices: list[DeviceStatusView]
    uplink_connected: bool
    uplink_last_error: str
    #: connected, but the hub's session is not on its broker yet: nothing is sent
    uplink_waiting_for_hub: bool = False
    outbox_depth: int
    outbox: BudgetReport
    windows_enqueued: int
    messages_published: dict[str, int]
    messages_discarded: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)
