"""What each KPI measures, its unit and its 2025 target with the plan or standard it comes from
(``../shared/domain/plans.md``, ``standards.md``). A KPI with no numeric target in the plans says
so (``target`` None) rather than inventing one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kpi(StrEnum):
    CAMPUS_IOT_COVERAGE = "campus_iot_coverage"
    SMART_LIGHTING_COVERAGE = "smart_lighting_coverage"
    RECORDING_CLASSROOM_COVERAGE = "recording_classroom_coverage"
    LIGHTING_COMPLIANCE = "classroom_lighting_compliance"
    RECORDING_USAGE = "recording_room_usage"
    ENERGY_PER_SCHOOL = "energy_per_school"


@dataclass(frozen=True)
class KpiDefinition:
    kpi: Kpi
    name: str
    unit: str
    measures: str
    target: float | None  # in ``unit``; None: the plans set no number
    target_source: str
    higher_is_better: bool = True


LISHUI_2025 = "Lishui plan 深入实施智慧校园建设: 100 % coverage by 2025 (plans.md)"

DEFINITIONS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        Kpi.CAMPUS_IOT_COVERAGE, "Campus IoT coverage (校园物联网)", "%",
        "schools with an approved gateway heard in the last 24 h, over every school in the "
        "register (schools without a gateway included)",
        100.0, LISHUI_2025,
    ),
    KpiDefinition(
        Kpi.SMART_LIGHTING_COVERAGE, "Smart lighting coverage (智能灯光)", "%",
        "classrooms (rooms with lighting, desk sensors or recording) whose lighting controller "
        "reported in the last 24 h, over all such classrooms",
        100.0, LISHUI_2025,
    ),
    KpiDefinition(
        Kpi.RECORDING_CLASSROOM_COVERAGE, "Recording classroom coverage (录播教室)", "%",
        "schools with a recording classroom controller heard in the last 24 h, over every "
        "school in the register",
        100.0, LISHUI_2025,
    ),
    KpiDefinition(
        Kpi.LIGHTING_COMPLIANCE, "Classroom lighting compliance (GB 7793-2010)", "%",
        "share of lesson minutes of the last 7 days with desk illuminance >= 300 lx and, with "
        "several desk sensors in a room, uniformity min/mean >= 0.7; blackboard sensors (device "
        "key containing 'blackboard') must give >= 500 lx and >= 0.8 too",
        100.0, "GB 7793-2010 §; GB/T 36876-2018 (standards.md §1.1-1.2): every lesson",
    ),
    KpiDefinition(
        Kpi.RECORDING_USAGE, "Recording room usage (三个课堂)", "h/week",
        "hours recorded in the last 7 days (recording_state = recording), all recording "
        "classrooms together",
        None, "city plan 三个课堂: 'routine use', no number given (plans.md)",
    ),
    KpiDefinition(
        Kpi.ENERGY_PER_SCHOOL, "Energy per school", "kWh/day",
        "import energy of the last 24 h from the power meters, per school with a meter",
        None, "no target in the plans", higher_is_better=False,
    ),
)  # fmt: skip

BY_KPI = {definition.kpi: definition for definition in DEFINITIONS}
