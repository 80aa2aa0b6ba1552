"""JSON payloads of MQTT devices: decode to point values, and build them (for simulators).

Each point is found by its dotted path (``a.b``, ``a.list[0].c``, a leading ``$.`` allowed).
``number`` takes a JSON number (not a bool), applies ``scale`` and ``offset`` and converts
``source_unit`` to ``unit``; ``bool`` takes true/false and gives 1/0; ``enum`` maps a string through
the point's table. A missing path, a value of the wrong JSON type, an unknown enum string or a
non-finite number puts the point in ``invalid``; only a payload that is not a JSON object fails
as a whole.

Set commands (profiles with ``mqtt.command``) use the same paths and encodings, for the writable
points only: ``encode_mqtt_command`` builds one for the agent, ``decode_mqtt_command`` reads it
back in the simulator.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import orjson

from device_profiles.errors import EncodeError, PayloadError
from device_profiles.registers import DecodedValues
from device_profiles.schema import MqttMapping, MqttPoint, MqttValueType
from device_profiles.units import conversion

_MISSING = object()


def _lookup(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for key, index in _steps(path):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
        for position in index:
            if not isinstance(node, list) or position >= len(node):
                return _MISSING
            node = node[position]
    return node


@lru_cache(maxsize=4096)
def _steps(path: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``$.a.b[1][0].c`` -> ((a, ()), (b, (1, 0)), (c, ()))."""
    steps = []
    for part in path.removeprefix("$.").split("."):
        key, *indexes = part.split("[")
        steps.append((key, tuple(int(i.rstrip("]")) for i in indexes)))
    return tuple(steps)


def _decode_point(point: MqttPoint, raw: Any) -> float | None:
    if point.type is MqttValueType.BOOL:
        return float(raw) if isinstance(raw, bool) else None
    if point.type is MqttValueType.ENUM:
        assert point.enum is not None
        code = point.enum.get(raw) if isinstance(raw, str) else None
        return None if code is None else float(code)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw) * point.scale + point.offset
    if point.source_unit is not None:
        factor, offset = conversion(point.source_unit, point.unit)
        value = value * factor + offset
    return value if math.isfinite(value) else None


def decode_mqtt_payload(mapping: MqttMapping, payload: bytes) -> DecodedValues:
    """Decode one device payload; raises ``PayloadError`` when it is not a JSON object."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(str(exc), reason="invalid_json") from None
    if not isinstance(document, dict):
        raise PayloadError(
            f"expected a JSON object, got {type(document).__name__}", reason="not_object"
        )
    result = DecodedValues()
    for point in mapping.points:
        raw = _lookup(document, point.path)
        value = None if raw is _MISSING else _decode_point(point, raw)
        if value is None:
            result.invalid.append(point.name)
        else:
            result.values[point.name] = value
    return result


def _encode_point(point: MqttPoint, value: float) -> Any:
    if point.type is MqttValueType.BOOL:
        return bool(value)
    if point.type is MqttValueType.ENUM:
        assert point.enum is not None
        for label, code in point.enum.items():
            if code == value:
                return label
        raise EncodeError(f"{point.name}: {value} is not one of the enum codes {point.enum}")
    if point.source_unit is not None:
        factor, offset = conversion(point.source_unit, point.unit)
        value = (value - offset) / factor
    return (value - point.offset) / point.scale


def encode_mqtt_payload(
    mapping: MqttMapping, values: dict[str, float], *, whole_as_int: bool = False
) -> bytes:
    """Build the nested JSON a device publishes for ``values`` (a subset of the points);
    ``whole_as_int`` writes whole numbers as JSON integers (``128``, not ``128.0``)."""
    points = {p.name: p for p in mapping.points}
    unknown = sorted(set(values) - set(points))
    if unknown:
        raise EncodeError(f"unknown points {unknown} (known: {sorted(points)})")
    document: dict[str, Any] = {}
    for name, value in values.items():
        point = points[name]
        if "[" in point.path:
            raise EncodeError(f"{name}: path {point.path!r} indexes a list: not built here")
        *parents, leaf = point.path.removeprefix("$.").split(".")
        node = document
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise EncodeError(f"{name}: path {point.path!r} runs through a value")
            node = child
        if isinstance(node.get(leaf), dict):
            raise EncodeError(f"{name}: path {point.path!r} is an object of other points")
        encoded = _encode_point(point, value)
        if whole_as_int and isinstance(encoded, float) and encoded.is_integer():
            encoded = int(encoded)
        node[leaf] = encoded
    return orjson.dumps(document)


def encode_mqtt_command(mapping: MqttMapping, values: dict[str, float]) -> bytes:
    """The set command a device takes for ``values`` of its writable points, e.g.
    ``{"brightness": 128}`` or ``{"state": "ON"}``."""
    read_only = sorted(
        n for n in values if not any(p.name == n and p.writable for p in mapping.points)
    )
    if read_only:
        raise EncodeError(f"points {read_only} are not writable")
    return encode_mqtt_payload(mapping, values, whole_as_int=True)


def decode_mqtt_command(mapping: MqttMapping, payload: bytes) -> dict[str, float]:
    """The writable points a set command gives a value (others, and unreadable values, ignored);
    raises ``PayloadError`` when it is not a JSON object."""
    decoded = decode_mqtt_payload(mapping, payload)
    writable = {p.name for p in mapping.points if p.writable}
    return {name: value for name, value in decoded.values.items() if name in writable}
