"""Writes to devices with read-back, for local actions, hub commands and technicians.

Every write goes through ``ActionRunner``: it checks the request against the device's profile
(a named action, or a writable point within its ``writes:`` limits), writes through a
``DeviceIO`` (for Modbus the device's coordinator, so writes are serialised with polling; for
MQTT a set command on the site broker), reads the device back and compares (a fresh poll, or the
state report that confirms the command), retries a bounded number of times, and appends an audit
record with the result. One request at a time per device.

Interlocks for automatic (rule-triggered) actions: an action runs once when its rule raises and
not again while that event stays active; a manual write (a technician's ``campus agent write`` or
a hub command) holds automatic actions off that point for ``manual_hold_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter

from campus_protocol.messages import CommandStatus
from device_profiles.rules import NamedAction, PointWrite, WriteLimit
from device_profiles.schema import Profile
from edge_agent.rules.store import RuleStore

log = logging.getLogger(__name__)

ACTIONS = Counter(
    "campus_actions_total",
    "Writes to devices (local actions, commands, technicians) by origin and result.",
    ["origin", "status"],
)
RETRY_DELAY_S = 0.2


@dataclass(frozen=True)
class WriteAttempt:
    """What one write did: ``ok`` when the device took it; ``read_back`` when it was read."""

    ok: bool
    detail: str = ""
    read_back: float | None = None


class DeviceIO(Protocol):
    """Writes one point and reads a device back; implemented per protocol."""

    async def write_point(self, device: str, point: str, value: float) -> WriteAttempt: ...

    async def read_back(
        self, device: str, confirms: Callable[[Mapping[str, float]], bool]
    ) -> dict[str, float]:
        """The device's values after a write: a fresh poll, or (a device that reports rather
        than being polled) its reports until one ``confirms`` the write or a timeout; raises
        ``OSError`` when the device cannot be read."""
        ...


class WriteRefused(ValueError):
    """A request the profile does not allow; ``reason`` is a bounded counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ActionResult:
    status: CommandStatus
    detail: str
    target: str  # the action id or the point written
    value: float | None = None
    readback: float | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status is CommandStatus.SUCCEEDED


@dataclass
class _Plan:
    target: str
    writes: list[PointWrite]
    verify: list[PointWrite]
    value: float | None = None


def no_such_device(device: str) -> str:
    return f"no device {device!r} on this gateway"


@dataclass
class ActionRunner:
    """Executes named actions and point writes on the agent's devices."""

    io: DeviceIO
    profiles: Mapping[str, Profile]  # by device id
    store: RuleStore
    unknown: Callable[[str], str] = no_such_device  # why a device is not in ``profiles``
    manual_hold_s: float = 1800.0
    clock: Callable[[], float] = time.time
    retry_delay_s: float = RETRY_DELAY_S
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    # -- checks (no I/O) ------------------------------------------------------------------------

    def plan_action(self, device: str, action: str) -> _Plan:
        profile = self._writable_profile(device)
        named = next((a for a in profile.actions if a.id == action), None)
        if named is None:
            known = ", ".join(a.id for a in profile.actions) or "none"
            raise WriteRefused("unknown_action", f"{device}: no action {action!r} (known: {known})")
        return _plan_of(named)

    def plan_write(self, device: str, point: str, value: object) -> _Plan:
        """Check a direct point write against the profile: writable, its type and range."""
        profile = self._writable_profile(device)
        if point not in profile.point_names:
            raise WriteRefused("unknown_point", f"{device}: no point {point!r}")
        if point not in profile.writable_points:
            raise WriteRefused("read_only", f"{device}: point {point!r} is read-only")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WriteRefused("invalid_value", f"{device}.{point}: value must be a number")
        number = float(value)
        if not math.isfinite(number):
            raise WriteRefused("invalid_value", f"{device}.{point}: value must be finite")
        limit = profile.writes.get(point) or WriteLimit(min=-math.inf, max=math.inf, integer=False)
        if not limit.direct:
            actions = [a.id for a in profile.actions if any(w.point == point for w in a.writes)]
            raise WriteRefused(
                "action_only", f"{device}.{point}: written only by actions ({', '.join(actions)})"
            )
        if not limit.min <= number <= limit.max:
            raise WriteRefused(
                "out_of_range",
                f"{device}.{point}: {number:g} outside {limit.min:g}..{limit.max:g}",
            )
        if limit.integer and number != int(number):
            raise WriteRefused("invalid_value", f"{device}.{point}: {number:g} is not an integer")
        readback = limit.readback or point
        return _Plan(
            target=point,
            writes=[PointWrite(point=point, value=number)],
            verify=[PointWrite(point=readback, value=number)],
            value=number,
        )

    def held_off(self, device: str, plan: _Plan) -> float | None:
        """Until when a manual override holds this plan's points, if it does."""
        now = self.clock()
        holds = [self.store.held_until(device, w.point) for w in plan.writes]
        active = [until for until in holds if until is not None and until > now]
        return max(active) if active else None

    # -- execution ------------------------------------------------------------------------------

    async def execute(
        self,
        device: str,
        plan: _Plan,
        *,
        origin: str,
        ref: str,
        retries: int = 2,
        manual: bool = False,
    ) -> ActionResult:
        """Write, read back and compare, up to ``1 + retries`` times; audit the result.

        ``manual`` writes (technician, hub command) set the manual hold on their points; automatic
        ones are refused while such a hold lasts."""
        if not manual and (until := self.held_off(device, plan)) is not None:
            clock_time = time.strftime("%H:%M:%S", time.localtime(until))
            result = ActionResult(
                CommandStatus.REJECTED,
                f"held off by a manual override until {clock_time}",
                plan.target,
                plan.value,
            )
            return self._audit(device, result, origin=origin, ref=ref)
        lock = self._locks.setdefault(device, asyncio.Lock())
        async with lock:
            result = await self._attempts(device, plan, retries)
        if manual:
            for write in plan.writes:
                self.store.hold(device, write.point, self.clock() + self.manual_hold_s)
        return self._audit(device, result, origin=origin, ref=ref)

    async def _attempts(self, device: str, plan: _Plan, retries: int) -> ActionResult:
        detail = ""
        readback: float | None = None
        for attempt in range(1, retries + 2):
            if attempt > 1:
                await asyncio.sleep(self.retry_delay_s)
            failed = None
            for write in plan.writes:
                written = await self.io.write_point(device, write.point, write.value)
                if not written.ok:
                    failed = written.detail or f"{device}.{write.point}: write failed"
                    break
            if failed is not None:
                detail = failed
                continue
            try:
                values = await self.io.read_back(
                    device, lambda got: not self._mismatches(device, plan, got)
                )
            except Exception as exc:  # the read-back failed: count it as a failed attempt
                detail = f"{device}: read-back failed: {exc}"
                continue
            readback = values.get(plan.verify[0].point, readback)
            mismatches = self._mismatches(device, plan, values)
            if not mismatches:
                return ActionResult(
                    CommandStatus.SUCCEEDED,
                    "written and read back",
                    plan.target,
                    plan.value,
                    readback,
                    attempt,
                )
            detail = f"{device}: " + "; ".join(mismatches)
        return ActionResult(
            CommandStatus.FAILED, detail, plan.target, plan.value, readback, retries + 1
        )

    def _mismatches(self, device: str, plan: _Plan, values: Mapping[str, float]) -> list[str]:
        """What the values read back say against the plan's checks (empty: confirmed)."""
        wrong = []
        for check in plan.verify:
            got = values.get(check.point)
            if got is None or not self._same(device, check, got):
                wrong.append(f"{check.point} reads {got} (wanted {check.value:g})")
        return wrong

    def _same(self, device: str, check: PointWrite, got: float) -> bool:
        profile = self._profile(device)
        scale = 0.0
        if profile.modbus is not None:
            point = next((p for p in profile.modbus.points if p.name == check.point), None)
            scale = abs(point.scale) if point is not None else 0.0
        return math.isclose(got, check.value, rel_tol=1e-6, abs_tol=max(1e-9, scale / 2))

    def _audit(self, device: str, result: ActionResult, *, origin: str, ref: str) -> ActionResult:
        self.store.audit(
            origin=origin,
            ref=ref,
            device=device,
            what=result.target if result.value is None else f"{result.target}={result.value:g}",
            status=result.status.value,
            detail=result.detail,
        )
        ACTIONS.labels(origin, result.status.value).inc()
        level = logging.INFO if result.ok else logging.WARNING
        log.log(
            level,
            "%s %s on %s: %s (%s)",
            origin,
            result.target,
            device,
            result.status.value,
            result.detail,
        )
        return result

    def _profile(self, device: str) -> Profile:
        profile = self.profiles.get(device)
        if profile is None:
            raise WriteRefused("unknown_device", self.unknown(device))
        return profile

    def _writable_profile(self, device: str) -> Profile:
        profile = self._profile(device)
        if not profile.writable_points and not profile.actions:
            raise WriteRefused(
                "read_only", f"{device}: its profile {profile.id!r} has nothing writable"
            )
        return profile


def _plan_of(action: NamedAction) -> _Plan:
    verify = action.verify or action.writes
    return _Plan(target=action.id, writes=list(action.writes), verify=list(verify))
