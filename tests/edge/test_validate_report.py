"""``campus agent validate`` reports every mistake at once, where it is in the YAML, and the name
a typo probably meant; a file that is not YAML gets one clear line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from campus_config.yaml_locations import field_positions
from edge_agent.cli import app

runner = CliRunner()

CONFIG_WITH_THREE_MISTAKES = """\
gateway:
  id: gw-1
  site: {city_id: c1, district_id: d1, school_id: s1}
hub:
  host: 127.0.0.1
  pasword: a-real-secret
devices:
  - id: air-1
    profile: sensecap_s_co2_3
    room: r101
    modbus: {host: 192.168.10.22, unitid: 45}
"""


def validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["validate", "-c", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, [
        line.removeprefix(f"error {path}: ") for line in result.output.splitlines()
    ]


def test_every_mistake_is_reported_at_once_with_line_column_and_a_suggestion(
    tmp_path: Path,
) -> None:
    code, lines = validate(tmp_path, CONFIG_WITH_THREE_MISTAKES)

    assert code == 2
    assert lines[0] == (
        "hub.pasword: Extra inputs are not permitted; did you mean password? (line 6, column 3)"
    )
    assert lines[1] == (
        "devices[0].modbus.unitid: Extra inputs are not permitted; did you mean unit_id?"
        " (line 11, column 35)"
    )
    assert lines[2].startswith(
        'devices[0].profile: unknown profile "sensecap_s_co2_3": did you mean sensecap_s_co2_03?'
    )
    assert lines[2].endswith("(line 9, column 5)")


def test_malformed_yaml_is_one_line_saying_where(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "gateway:\n  id: gw-1\n   site: x\n")

    assert code == 2
    assert lines == ["not valid YAML (line 3, column 8): mapping values are not allowed here"]


def test_field_positions_cover_keys_and_list_items() -> None:
    positions = field_positions("a:\n  b: 1\nc:\n  - x: 2\n")

    assert positions == {"a": (1, 1), "a.b": (2, 3), "c": (3, 1), "c[0]": (4, 5), "c[0].x": (4, 5)}
