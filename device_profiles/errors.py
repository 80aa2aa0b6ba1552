"""The device_profiles exception family.

``DeviceProfilesError`` is the root. ``ProfileError`` means a profile file is invalid (caught at
load). ``RegisterBlockError`` and ``PayloadError`` mean a *device* sent something unusable; each
carries a bounded ``reason`` code usable as a metric label. ``EncodeError`` means our own caller
asked for a value the point cannot hold.
"""

from __future__ import annotations


class DeviceProfilesError(Exception):
    """Base class of every error raised by ``device_profiles``."""


class ProfileError(DeviceProfilesError, ValueError):
    """A profile file is unreadable or invalid; the message names file, field path and rule."""


class CodecError(DeviceProfilesError, ValueError):
    """Device data could not be decoded; ``reason`` is a short fixed code for counters."""

    reason = "malformed"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail


class RegisterBlockError(CodecError):
    """A register block does not fit its read plan (``wrong_length``, ``out_of_range``)."""

    reason = "wrong_length"


class PayloadError(CodecError):
    """An MQTT payload is not a JSON object (``invalid_json``, ``not_object``)."""

    reason = "invalid_json"


class EncodeError(DeviceProfilesError, ValueError):
    """A value cannot be encoded for its point (out of range, unknown name or enum code)."""
