"""Unit conversions a profile may ask for: ``value_in_unit = raw * factor + offset``.

One table, keyed by (from unit, to unit); a profile names ``source_unit`` (what the device
sends) and ``unit`` (what the agent reports), and the loader refuses a pair not in the table.
"""

from __future__ import annotations

#: (from, to) -> (factor, offset)
CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("°F", "°C"): (5 / 9, -32 * 5 / 9),
    ("K", "°C"): (1.0, -273.15),
    ("°C", "K"): (1.0, 273.15),
    ("Pa", "hPa"): (0.01, 0.0),
    ("kPa", "hPa"): (10.0, 0.0),
    ("hPa", "kPa"): (0.1, 0.0),
    ("W", "kW"): (0.001, 0.0),
    ("kW", "W"): (1000.0, 0.0),
    ("Wh", "kWh"): (0.001, 0.0),
    ("kWh", "Wh"): (1000.0, 0.0),
    ("mA", "A"): (0.001, 0.0),
    ("mV", "V"): (0.001, 0.0),
    ("ppb", "ppm"): (0.001, 0.0),
    ("mg/m³", "µg/m³"): (1000.0, 0.0),
    ("fc", "lx"): (10.763910417, 0.0),  # foot-candle
    ("ms", "s"): (0.001, 0.0),
    ("min", "s"): (60.0, 0.0),
}


class UnknownConversion(ValueError):
    """No conversion between the two units is known."""


def conversion(source: str, target: str) -> tuple[float, float]:
    """``(factor, offset)`` turning a value in ``source`` into ``target`` (identity if equal)."""
    if source == target:
        return (1.0, 0.0)
    try:
        return CONVERSIONS[(source, target)]
    except KeyError:
        known = ", ".join(f"{a}->{b}" for a, b in CONVERSIONS)
        raise UnknownConversion(
            f"no conversion from {source!r} to {target!r} (known: {known})"
        ) from None
