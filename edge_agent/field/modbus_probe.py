"""Reading a Modbus bus by hand: raw register reads and a unit-by-unit scan for known profiles.

A ``Probe`` is one ``ModbusLink`` (the agent's own connection to a Modbus TCP host or an RTU
serial line) used for one technician command; its errors are the agent's own
(``ModbusTimeout``, ``ModbusReadError`` …), so a scan says "no answer" or "illegal data address"
in the words the status page uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from device_profiles.registers import decode_block, plan_reads
from device_profiles.schema import Profile, RegisterTable
from edge_agent.settings import ModbusEndpoint
from edge_agent.sources.modbus_link import (
    ModbusClient,
    ModbusLink,
    ModbusReadError,
    ModbusSourceError,
    ModbusTimeout,
    read_block,
)


class Probe:
    """``async with Probe(bus, timeout_s) as probe: await probe.read(...)``."""

    def __init__(self, bus: ModbusEndpoint, timeout_s: float) -> None:
        self.bus = bus
        self.link = ModbusLink(bus, timeout_s=timeout_s)

    async def __aenter__(self) -> Probe:
        await self.link.connect("probe")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.link.close()

    async def read(self, *, unit: int, table: RegisterTable, address: int, count: int) -> list[int]:
        """``count`` registers from ``address``; raises a ``ModbusSourceError`` subclass."""
        device = self.bus.describe()

        async def call(client: ModbusClient) -> list[int]:
            return await read_block(
                client, device=device, unit=unit, table=table, start=address, count=count
            )

        try:
            return await self.link.request(f"unit {unit} {table.value} {address}+{count}", call)
        except ModbusSourceError as exc:
            if exc.reconnect:  # a late answer must not be taken for the next request's
                self.link.close()
            raise


@dataclass(frozen=True)
class ProfileMatch:
    """A profile whose whole register map read cleanly from a unit, and a few of its values."""

    profile: str
    points: int
    invalid: int
    sample: dict[str, float]
    default_unit: bool  # the unit id is the profile's factory default


@dataclass
class UnitFinding:
    """What one unit id answered: nothing, a Modbus exception, or registers."""

    unit: int
    answered: bool
    note: str = ""
    matches: list[ProfileMatch] = field(default_factory=list)


async def match_profile(probe: Probe, unit: int, profile: Profile) -> ProfileMatch | None:
    """The profile's values read from ``unit``, or None when any of its reads is refused."""
    assert profile.modbus is not None
    values: dict[str, float] = {}
    invalid = 0
    for block in plan_reads(profile.modbus):
        try:
            registers = await probe.read(
                unit=unit, table=block.table, address=block.start, count=block.count
            )
        except ModbusSourceError:
            return None
        decoded = decode_block(block, registers, profile.modbus)
        values.update(decoded.values)
        invalid += len(decoded.invalid)
    sample = dict(list(values.items())[:3])
    default_unit = profile.modbus.default_unit_id == unit
    return ProfileMatch(profile.id, len(values) + invalid, invalid, sample, default_unit)


async def scan_unit(
    probe: Probe, unit: int, profiles: Iterable[Profile], *, table: RegisterTable, address: int
) -> UnitFinding:
    """Does ``unit`` answer a one-register read at ``address``, and which profiles fit it?

    A Modbus exception is an answer (the device is there but has no such register)."""
    try:
        await probe.read(unit=unit, table=table, address=address, count=1)
        finding = UnitFinding(unit, answered=True, note=f"{table.value} {address} readable")
    except ModbusReadError as exc:
        if exc.unreachable:
            return UnitFinding(unit, answered=False, note=exc.name)
        finding = UnitFinding(unit, answered=True, note=f"{exc.name} at {table.value} {address}")
    except ModbusTimeout:
        return UnitFinding(unit, answered=False, note="no answer")
    for profile in profiles:
        if profile.modbus is None:
            continue
        match = await match_profile(probe, unit, profile)
        if match is not None:
            finding.matches.append(match)
    # best first: no invalid values, at its factory unit id, the most points read
    finding.matches.sort(key=lambda m: (m.invalid, not m.default_unit, -m.points))
    return finding


async def scan(
    probe: Probe,
    units: Sequence[int],
    profiles: Mapping[str, Profile],
    *,
    table: RegisterTable = RegisterTable.HOLDING,
    address: int = 0,
    progress: Callable[[int], None] = lambda unit: None,
) -> list[UnitFinding]:
    """Every unit in ``units``, in order; ``progress`` is told each unit as it is done."""
    findings = []
    for unit in units:
        findings.append(
            await scan_unit(probe, unit, profiles.values(), table=table, address=address)
        )
        progress(unit)
    return findings
