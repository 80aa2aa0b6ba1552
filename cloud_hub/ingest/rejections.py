"""The one exception of hub ingest: a decoded message (or window) the hub refuses to store."""

from __future__ import annotations


class Rejected(Exception):
    """A decoded message the hub cannot store; ``reason`` (bounded) and ``stage`` label the
    error counter, ``detail`` says what exactly."""

    def __init__(self, reason: str, detail: str, *, stage: str = "processing") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.stage = stage
        self.detail = detail
