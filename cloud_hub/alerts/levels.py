"""Warning levels as people read them: I red, II orange, III yellow, IV blue (突发事件应对法)."""

from __future__ import annotations

from typing import NamedTuple

from campus_protocol.messages import Severity


class Level(NamedTuple):
    code: Severity
    name: str  # the level's Chinese name
    colour: str


LEVELS: dict[Severity, Level] = {
    Severity.I: Level(Severity.I, "特别严重", "red"),
    Severity.II: Level(Severity.II, "严重", "orange"),
    Severity.III: Level(Severity.III, "较重", "yellow"),
    Severity.IV: Level(Severity.IV, "一般", "blue"),
}
