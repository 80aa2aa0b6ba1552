"""A KPI report as flat rows: the JSON body, the CSV export and the console table share them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from cloud_hub.kpis.compute import KpiReport
from cloud_hub.kpis.definitions import BY_KPI


def kpi_rows(report: KpiReport) -> Iterable[dict[str, object]]:
    """One flat row per KPI (the CSV export and the JSON body share it)."""
    for value in report.values:
        definition = BY_KPI[value.kpi]
        yield {
            "level": report.level.value,
            "id": report.id,
            "at": report.at.isoformat(),
            "kpi": value.kpi.value,
            "name": definition.name,
            "value": None if value.value is None else round(value.value, 2),
            "unit": definition.unit,
            "numerator": round(value.numerator, 2),
            "denominator": round(value.denominator, 2),
            "target_2025": definition.target,
            "meets_target": value.meets_target,
            "target_source": definition.target_source,
            "measures": definition.measures,
        }


def to_csv(report: KpiReport) -> str:
    """One header line, then one line per KPI."""
    rows = list(kpi_rows(report))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
