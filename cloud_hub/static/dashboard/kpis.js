// The bureau's KPIs beside their 2025 targets (GET /api/v1/kpis), for the caller's own scope or
// one school.
import { ApiError, get } from "./api.js";
import { h, num } from "./dom.js";
import { t } from "./i18n.js";

const withUnit = (value, unit) => (value === null ? "–" : `${num(value)} ${unit}`);

function verdict(kpi) {
  if (kpi.target_2025 === null) return h("span", { class: "muted" }, t("kpi_no_target"));
  if (kpi.meets_target === null) return h("span", { class: "muted" }, t("no_data"));
  const met = kpi.meets_target;
  return h("span", { class: `kpi-verdict kpi-${met ? "met" : "missed"}` }, t(met ? "kpi_met" : "kpi_missed"));
}

/** A section with the KPI table; ``query`` is e.g. ``level=school&id=s-1`` (empty: own scope). */
export async function kpiSection(query = "") {
  let body;
  try {
    body = await get(`/api/v1/kpis${query ? `?${query}` : ""}`);
  } catch (error) { // e.g. a school's KPIs at a central hub: kept at its regional hub
    if (error instanceof ApiError && error.status === 404) return h("section", { class: "kpis" }, h("h2", {}, t("kpis")), h("p", { class: "muted" }, error.message));
    throw error;
  }
  const head = ["kpi_name", "kpi_value", "kpi_target", "kpi_verdict"];
  return h("section", { class: "kpis" },
    h("h2", {}, t("kpis"), h("span", { class: "muted small" }, ` ${t("kpi_schools", { n: body.schools })}`)),
    h("table", {},
      h("thead", {}, h("tr", {}, head.map((key) => h("th", {}, t(key))))),
      h("tbody", {}, body.kpis.map((k) => h("tr", { dataset: { kpi: k.kpi } },
        h("td", { title: k.measures }, t(`kpi_${k.kpi}`, {}, k.name)),
        h("td", { class: "num" }, withUnit(k.value, k.unit)),
        h("td", { class: "num", title: k.target_source }, withUnit(k.target_2025, k.unit)),
        h("td", {}, verdict(k)))))));
}
