// The city view (summary cards, the city -> district -> school tree with problems first, active
// alerts, KPIs) and the list of every active alert.
import { get } from "./api.js";
import { alertsTable } from "./alerts.js";
import { LEVELS, levelBadge, statusBadge, topLevel } from "./badges.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { kpiSection } from "./kpis.js";

const STATUS_RANK = { offline: 0, degraded: 1, unknown: 1, online: 2 };

/** Tree nodes the user folded, kept across refreshes. */
const collapsed = new Set();

function byProblemsFirst(a, b) {
  return STATUS_RANK[a.status] - STATUS_RANK[b.status] || b.alerts.length - a.alerts.length
    || a.name.localeCompare(b.name);
}

/** Alerts by level (I first), then newest first. */
function bySeverity(alerts) {
  return [...alerts].sort((a, b) => LEVELS.indexOf(a.severity) - LEVELS.indexOf(b.severity)
    || Date.parse(b.opened_at) - Date.parse(a.opened_at));
}

function summaryCards(schools, alerts) {
  const count = (status) => schools.filter((s) => s.status === status).length;
  return h("section", { class: "cards" },
    ["offline", "degraded", "online"].map((status) =>
      h("div", { class: `card card-${status}` }, h("div", { class: "big" }, count(status)), statusBadge(status))),
    LEVELS.map((level) =>
      h("div", { class: `card card-level-${level}` },
        h("div", { class: "big" }, alerts.filter((a) => a.severity === level).length), levelBadge(level))));
}

function schoolRow(school) {
  const level = topLevel(school.alerts);
  return h("li", {},
    h("a", { class: `school status-${school.status}`, href: `#/school/${encodeURIComponent(school.id)}`, dataset: { school: school.id, status: school.status } },
      h("span", { class: `dot dot-${school.status}`, title: t(school.status) }),
      h("span", { class: "name" }, school.name || school.id),
      h("span", { class: "muted small" }, school.id),
      school.reported_by ? h("span", { class: "muted small reported-by" }, `· ${school.reported_by.regional_hub}`) : null,
      h("span", { class: "spacer" }),
      level ? h("span", { class: "alert-count" }, levelBadge(level), ` ${school.alerts.length}`) : null,
      h("span", { class: "muted small" }, `${school.devices.online}/${school.devices.total} ${t("devices_online")}`),
      statusBadge(school.status)));
}

function details(key, cls, summary, body) {
  const el = h("details", { class: cls, open: !collapsed.has(key) }, h("summary", {}, summary), body);
  el.addEventListener("toggle", () => (el.open ? collapsed.delete(key) : collapsed.add(key)));
  return el;
}

function tree(schools) {
  const cities = new Map();
  for (const school of schools) {
    const districts = cities.get(school.city_id) ?? new Map();
    const list = districts.get(school.district.id) ?? [];
    list.push(school);
    districts.set(school.district.id, list);
    cities.set(school.city_id, districts);
  }
  const worst = (list) => list.reduce((w, s) => (STATUS_RANK[s.status] < STATUS_RANK[w] ? s.status : w), "online");
  const counts = (list) => `${t("schools_summary", { n: list.length })} · ${list.filter((s) => s.status !== "online").length} ⚠`;
  return h("section", { class: "tree", id: "tree" }, h("h2", {}, t("schools"), h("span", { class: "muted small" }, ` (${t("problems_first")})`)),
    [...cities.entries()].map(([city, districts]) => {
      const all = [...districts.values()].flat();
      const ordered = [...districts.entries()].sort(([, a], [, b]) =>
        STATUS_RANK[worst(a)] - STATUS_RANK[worst(b)] || a[0].district.name.localeCompare(b[0].district.name));
      return details(`city:${city}`, "city", [h("span", { class: `dot dot-${worst(all)}` }), ` ${t("city")} ${city} · ${counts(all)}`],
        ordered.map(([id, list]) => details(`district:${id}`, "district",
          [h("span", { class: `dot dot-${worst(list)}` }), ` ${list[0].district.name || id} · ${counts(list)}`],
          h("ul", {}, [...list].sort(byProblemsFirst).map(schoolRow)))));
    }));
}

/** The city at a glance: counts, the tier tree, the most severe active alerts, the KPIs. */
export async function cityView() {
  const [schools, alerts] = await Promise.all([get("/api/v1/schools"), get("/api/v1/alerts?state=active&limit=500")]);
  const alertsBySchool = Object.groupBy(alerts.data, (a) => a.school_id ?? "");
  const rows = schools.data.map((s) => ({ ...s, alerts: alertsBySchool[s.id] ?? [] }));
  const names = Object.fromEntries(rows.map((s) => [s.id, s.name]));
  return [
    summaryCards(rows, alerts.data),
    h("div", { class: "columns" },
      tree(rows),
      h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts"), h("span", { class: "muted small" }, ` ${t("alert_count", { n: alerts.count })}`)),
        alertsTable(bySeverity(alerts.data).slice(0, 50), names))),
    await kpiSection(),
  ];
}

/** Every active alert in scope, most severe first. */
export async function alertsView() {
  const [schools, alerts] = await Promise.all([get("/api/v1/schools"), get("/api/v1/alerts?state=active&limit=1000")]);
  const names = Object.fromEntries(schools.data.map((s) => [s.id, s.name]));
  return [h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts"), ` (${alerts.count})`), alertsTable(bySeverity(alerts.data), names))];
}
