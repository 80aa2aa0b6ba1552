"""Golden cases: each folder under cases/ holds profile.yaml plus expected.json or error.txt.

expected.json gives a sparse register image (``registers: {table: {start: [values]}}``; coils and
discrete inputs as 0/1) or an MQTT ``payload``, the read plan (``blocks``) and the decoded
``values`` / ``invalid`` points and ``texts`` (string points).
error.txt holds the exact lines the loader reports, with the file path relative to the case.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from device_profiles.loader import ProfileError, load_profile
from device_profiles.mqtt_payload import decode_mqtt_payload
from device_profiles.registers import decode_block, plan_reads

CASES = Path(__file__).parent / "cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "profile.yaml").is_file())


def _register_image(spec: dict[str, dict[str, list[int]]]) -> dict[str, dict[int, int]]:
    image: dict[str, dict[int, int]] = {}
    for table, runs in spec.items():
        cells = image.setdefault(table, {})
        for start, values in runs.items():
            cells.update({int(start) + i: v for i, v in enumerate(values)})
    return image


def test_there_are_enough_golden_cases() -> None:
    assert len(CASE_DIRS) >= 8
    assert sum((d / "error.txt").is_file() for d in CASE_DIRS) >= 6


@pytest.mark.parametrize("case", CASE_DIRS, ids=[d.name for d in CASE_DIRS])
def test_profile_case_decodes_or_fails_as_recorded(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(case)
    error_file = case / "error.txt"
    if error_file.is_file():
        with pytest.raises(ProfileError) as excinfo:
            load_profile(Path("profile.yaml"))
        assert str(excinfo.value) == error_file.read_text(encoding="utf-8").strip()
        return

    profile = load_profile(Path("profile.yaml"))
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    values: dict[str, float] = {}
    invalid: list[str] = []
    texts: dict[str, str] = {}
    if "payload" in expected:
        assert profile.mqtt is not None
        decoded = decode_mqtt_payload(profile.mqtt, orjson.dumps(expected["payload"]))
        values, invalid = decoded.values, decoded.invalid
    else:
        assert profile.modbus is not None
        image = _register_image(expected["registers"])
        blocks = plan_reads(profile.modbus)
        assert [[b.table.value, b.start, b.count] for b in blocks] == expected["blocks"]
        for block in blocks:
            cells = image.get(block.table.value, {})
            registers = [cells.get(a, 0) for a in range(block.start, block.start + block.count)]
            decoded = decode_block(block, registers, profile.modbus)
            values.update(decoded.values)
            invalid.extend(decoded.invalid)
            texts.update(decoded.texts)
    assert values == pytest.approx(expected["values"], rel=1e-9)
    assert sorted(invalid) == sorted(expected["invalid"])
    assert texts == expected.get("texts", {})
