"""Helpers shared by the simulator tests."""

from __future__ import annotations

from datetime import datetime

from cloud_hub.broker import MosquittoBroker
from simulators.signals import SimClock

LESSON_TIME = datetime(2025, 3, 3, 8, 30)  # a Monday, in the first lesson


class HandClock(SimClock):
    """A SimClock whose wall time moves only when the test says so."""

    def __init__(self, start: datetime = LESSON_TIME) -> None:
        self.wall = 0.0
        super().__init__(speed=1.0, start=start, wall=lambda: self.wall)

    def advance(self, seconds: float) -> None:
        self.wall += seconds


def site_port(broker: MosquittoBroker) -> int:
    """The broker's anonymous site listener (the fixture always opens one)."""
    assert broker.site_port is not None
    return broker.site_port
