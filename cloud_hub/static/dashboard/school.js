// A school's page (GET /api/v1/schools/{id}): its gateway, active alerts, rooms with their
// devices, latest values with units, health and last error, a history chart, and its KPIs.
import { ApiError, get } from "./api.js";
import { alertsTable } from "./alerts.js";
import { statusBadge } from "./badges.js";
import { HistoryChart } from "./chart.js";
import { clock, h, num } from "./dom.js";
import { t } from "./i18n.js";
import { kpiSection } from "./kpis.js";

/** The chart of the school on screen, kept across refreshes so the user's choice stays. */
let chart = { school: null, view: null };

export function forgetChart() {
  chart = { school: null, view: null };
}

function valuesList(device) {
  return h("ul", { class: "values" }, Object.entries(device.values).map(([point, v]) =>
    h("li", { dataset: { point } }, h("span", { class: "muted" }, point), " ", h("b", {}, num(v.value)), v.unit ? ` ${v.unit}` : "")));
}

/** Status, plus what keeps a device out of the counts: not approved yet, or a profile unknown here. */
function healthCell(device) {
  return h("td", {},
    statusBadge(device.status),
    device.approval && device.approval !== "approved" ? h("div", { class: `small approval approval-${device.approval}` }, t(`approval_${device.approval}`)) : null,
    device.profile_known === false ? h("div", { class: "small error unknown-profile" }, t("profile_unknown")) : null);
}

function completeness(share) {
  return share === null || share === undefined ? "–" : `${num(Math.round(share * 1000) / 10)} %`;
}

function roomsSection(rooms) {
  const head = ["device", "profile", "status", "values", "completeness", "last_ok", "last_error"];
  return h("section", { class: "rooms" }, h("h2", {}, t("rooms")),
    rooms.map((room) => h("div", { class: "room", dataset: { room: room.id } },
      h("h3", {}, room.id ? `${room.name || room.id} (${room.id})` : t("room_none"),
        room.type ? h("span", { class: "muted small" }, ` · ${t(`room_${room.type}`, {}, room.type)}`) : null),
      h("table", { class: "devices" },
        h("thead", {}, h("tr", {}, head.map((k) => h("th", {}, t(k))))),
        h("tbody", {}, room.devices.map((d) => h("tr", { class: `device status-row-${d.status}`, dataset: { device: d.id, status: d.status } },
          h("td", {}, d.id), h("td", { class: "small" }, d.profile), healthCell(d),
          h("td", {}, valuesList(d)), h("td", { class: "small num" }, completeness(d.completeness_24h)),
          h("td", { class: "small" }, d.last_ok_at ? clock(d.last_ok_at) : t("never")),
          h("td", { class: "small error" }, d.last_error))))))));
}

function header(school) {
  const gateway = school.gateway;
  return [
    h("nav", { class: "crumbs" }, h("a", { href: "#/" }, `${t("city")} ${school.city_id}`), " › ", school.district.name || school.district.id, " › ", school.name),
    h("section", { class: `school-head status-${school.status}`, id: "school", dataset: { school: school.id, status: school.status } },
      h("h1", {}, h("span", { class: `dot dot-${school.status}` }), ` ${school.name || school.id} `, statusBadge(school.status)),
      h("dl", {},
        h("dt", {}, t("gateway")), h("dd", {}, gateway ? [gateway.id, " ", statusBadge(gateway.status)] : t("never")),
        h("dt", {}, t("last_seen")), h("dd", {}, gateway?.last_seen_at ? clock(gateway.last_seen_at) : t("never")),
        h("dt", {}, t("devices")), h("dd", {}, `${school.devices.online}/${school.devices.total} ${t("devices_online")}`))),
  ];
}

export async function schoolView(id) {
  let school;
  try {
    school = await get(`/api/v1/schools/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return [h("p", { class: "not-found" }, t("school_not_found"), `: ${id}`, h("div", { class: "muted small" }, error.message))];
    throw error;
  }
  if (chart.school !== id) chart = { school: id, view: new HistoryChart() };
  const alerts = school.active_alerts;
  if (alerts.length) chart.view.prefer(alerts[0].device, alerts[0].point);
  const kpis = await kpiSection(`level=school&id=${encodeURIComponent(school.id)}`);
  const { view } = chart;
  // drawn once the section is on the page, so the chart takes its width
  setTimeout(() => view.update(school.rooms.flatMap((room) => room.devices)), 0);
  return [
    ...header(school),
    h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts")), alertsTable(alerts, { [school.id]: school.name })),
    roomsSection(school.rooms),
    view.element,
    kpis,
  ];
}
