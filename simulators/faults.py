"""Faults on demand: a small table of fault kinds and what a poller sees for each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    OFFLINE = "offline"
    EXCEPTION = "exception"
    STUCK = "stuck"
    GARBAGE = "garbage"
    IGNORE_WRITES = "ignore_writes"
    WRONG_VALUE = "wrong_value"


@dataclass(frozen=True)
class FaultEffect:
    """How one fault kind shows on each protocol."""

    modbus: str
    mqtt: str


#: the one table of fault kinds (``campus sim list-faults`` prints it)
FAULTS: dict[FaultKind, FaultEffect] = {
    FaultKind.OFFLINE: FaultEffect(
        modbus="the unit stops answering: requests time out (other units keep answering)",
        mqtt="the device stops publishing and takes no commands",
    ),
    FaultKind.EXCEPTION: FaultEffect(
        modbus="every request gets a Modbus exception (code 2 illegal data address "
        "or 4 server device failure)",
        mqtt="enum points with an 'error' value report it (a recording controller's error state)",
    ),
    FaultKind.STUCK: FaultEffect(
        modbus="values freeze at the last reading; writes are accepted but change nothing seen",
        mqtt="the same payload is published again and again",
    ),
    FaultKind.GARBAGE: FaultEffect(
        modbus="read registers are random 16-bit words",
        mqtt="payloads are random bytes (not JSON)",
    ),
    FaultKind.IGNORE_WRITES: FaultEffect(
        modbus="writes are acknowledged but not applied: read-backs show the old value",
        mqtt="set commands are received but not applied: the state keeps the old value",
    ),
    FaultKind.WRONG_VALUE: FaultEffect(
        modbus="writes are applied wrong: 0 and 1 swap, any other value is halved",
        mqtt="set commands are applied wrong: 0 and 1 (OFF and ON) swap, other values halve",
    ),
}

ILLEGAL_DATA_ADDRESS = 2
SERVER_DEVICE_FAILURE = 4
EXCEPTION_CODES = (ILLEGAL_DATA_ADDRESS, SERVER_DEVICE_FAILURE)


@dataclass(frozen=True)
class Fault:
    """One active fault; ``exception_code`` matters only for ``exception``."""

    kind: FaultKind
    exception_code: int = SERVER_DEVICE_FAILURE

    def __post_init__(self) -> None:
        if self.exception_code not in EXCEPTION_CODES:
            raise ValueError(
                f"exception_code: must be one of {EXCEPTION_CODES} (got {self.exception_code})"
            )

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``offline``, ``stuck``, ``garbage``, ``exception`` or ``exception:2``."""
        name, _, code = text.partition(":")
        try:
            kind = FaultKind(name)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name!r} (known: {known})") from None
        if code and kind is not FaultKind.EXCEPTION:
            raise ValueError(f"fault {name!r} takes no code")
        return cls(kind, int(code)) if code else cls(kind)
