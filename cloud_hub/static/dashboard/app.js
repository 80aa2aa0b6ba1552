// The operations dashboard: city -> district -> school tree, school pages, alerts, charts.
// Routes: #/ (city), #/alerts, #/school/<id>. Data is re-read on every event from the hub's
// stream when it has one, otherwise every few seconds (``?poll=S`` overrides the period).
import { ApiError, fill, get, loadCapabilities, post, signOut } from "./api.js";
import { RANGES, drawChart, recordLive } from "./chart.js";
import { clock, h, num } from "./dom.js";
import { language, setLanguage, t, translate } from "./i18n.js";
import { kpiSection } from "./kpis.js";

const POLL_S = Number(new URLSearchParams(location.search).get("poll")) || 5;
const STATUS_RANK = { offline: 0, degraded: 1, unknown: 1, online: 2 };
const LEVELS = ["I", "II", "III", "IV"];

const ui = { collapsed: new Set(), chart: {}, caps: null, me: null };

const view = () => document.getElementById("view");

function banner(message) {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.textContent = message ?? "";
}

function statusBadge(status) {
  return h("span", { class: `status status-${status}`, dataset: { status } }, t(status));
}

function levelBadge(severity) {
  return h("span", { class: `level level-${severity}`, title: t(`level_${severity}_long`) }, t(`level_${severity}`));
}

/** The most severe level among ``alerts`` (I is the highest), or null. */
function topLevel(alerts) {
  return LEVELS.find((level) => alerts.some((a) => a.severity === level)) ?? null;
}

function byProblemsFirst(a, b) {
  return STATUS_RANK[a.status] - STATUS_RANK[b.status] || b.alerts.length - a.alerts.length
    || a.name.localeCompare(b.name);
}

// ---- alerts ---------------------------------------------------------------------------------

async function act(template, alert) {
  let failure = null;
  try {
    await post(fill(template, alert.id));
  } catch (error) {
    failure = error instanceof ApiError && error.status === 403 ? t("forbidden") : error.message;
  }
  await refresh();
  if (failure) banner(failure);
}

function alertActions(alert) {
  if (!ui.me.may_act) return h("td", { class: "actions muted read-only" }, t("read_only"));
  const acked = alert.state === "acknowledged" || alert.acknowledged_at;
  const unavailable = t("not_available");
  return h("td", { class: "actions" },
    acked ? h("span", { class: "muted" }, t("acked"))
      : h("button", { type: "button", class: "ack", disabled: !ui.caps.ack, title: ui.caps.ack ? null : unavailable,
        onclick: () => act(ui.caps.ack, alert) }, t("ack")),
    h("button", { type: "button", class: "resolve", disabled: !ui.caps.resolve, title: ui.caps.resolve ? null : unavailable,
      onclick: () => act(ui.caps.resolve, alert) }, t("resolve")));
}

function alertsTable(alerts, schoolNames) {
  if (!alerts.length) return h("p", { class: "muted empty-alerts" }, t("no_alerts"));
  const head = ["level", "school", "device", "point", "value", "message", "opened", "actions"];
  return h("table", { class: "alerts" },
    h("thead", {}, h("tr", {}, head.map((k) => h("th", {}, t(k))))),
    h("tbody", {}, alerts.map((a) => h("tr", { class: `alert level-row-${a.severity}`, dataset: { alert: a.id, level: a.severity } },
      h("td", {}, levelBadge(a.severity)),
      h("td", {}, a.school_id ? h("a", { href: `#/school/${encodeURIComponent(a.school_id)}` }, schoolNames[a.school_id] || a.school_id) : ""),
      h("td", {}, a.device),
      h("td", {}, a.point),
      h("td", { class: "num" }, `${num(a.value)} / ${num(a.threshold)}`),
      h("td", {}, a.message, a.standard ? h("div", { class: "muted small" }, a.standard) : null),
      h("td", {}, clock(a.opened_at)),
      alertActions(a)))));
}

// ---- city view ------------------------------------------------------------------------------

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
      h("span", { class: "spacer" }),
      level ? h("span", { class: "alert-count" }, levelBadge(level), ` ${school.alerts.length}`) : null,
      h("span", { class: "muted small" }, `${school.devices.online}/${school.devices.total} ${t("devices_online")}`),
      statusBadge(school.status)));
}

function details(key, cls, summary, body) {
  const el = h("details", { class: cls, open: !ui.collapsed.has(key) }, h("summary", {}, summary), body);
  el.addEventListener("toggle", () => (el.open ? ui.collapsed.delete(key) : ui.collapsed.add(key)));
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

async function cityView() {
  const [schools, alerts] = await Promise.all([get("/api/v1/schools"), get("/api/v1/alerts?state=active&limit=500")]);
  const alertsBySchool = Object.groupBy(alerts.data, (a) => a.school_id ?? "");
  const rows = schools.data.map((s) => ({ ...s, alerts: alertsBySchool[s.id] ?? [] }));
  const names = Object.fromEntries(rows.map((s) => [s.id, s.name]));
  return [
    summaryCards(rows, alerts.data),
    h("div", { class: "columns" },
      tree(rows),
      h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts"), h("span", { class: "muted small" }, ` ${t("alert_count", { n: alerts.count })}`)),
        alertsTable(alerts.data.slice(0, 50), names))),
    await kpiSection(),
  ];
}

async function alertsView() {
  const [schools, alerts] = await Promise.all([get("/api/v1/schools"), get("/api/v1/alerts?state=active&limit=1000")]);
  const names = Object.fromEntries(schools.data.map((s) => [s.id, s.name]));
  return [h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts"), ` (${alerts.count})`), alertsTable(alerts.data, names))];
}

// ---- school view ----------------------------------------------------------------------------

function valuesList(device, units) {
  return h("ul", { class: "values" }, Object.entries(device.values).map(([point, v]) => {
    units[`${device.id}|${point}`] = v.unit;
    return h("li", { dataset: { point } }, h("span", { class: "muted" }, point), " ", h("b", {}, num(v.value)), ` ${v.unit}`);
  }));
}

function roomsSection(devices, units) {
  const rooms = Map.groupBy(devices, (d) => d.room?.id ?? "");
  const head = ["device", "profile", "status", "values", "last_ok", "last_error"];
  return h("section", { class: "rooms" }, h("h2", {}, t("rooms")),
    [...rooms.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, list]) => {
      const room = list[0].room;
      return h("div", { class: "room" }, h("h3", {}, room ? `${room.name || room.id} (${room.id})` : t("room_none")),
        h("table", { class: "devices" },
          h("thead", {}, h("tr", {}, head.map((k) => h("th", {}, t(k))))),
          h("tbody", {}, list.map((d) => h("tr", { class: `device status-row-${d.status}`, dataset: { device: d.id, status: d.status } },
            h("td", {}, d.id), h("td", { class: "small" }, d.profile), h("td", {}, statusBadge(d.status)),
            h("td", {}, valuesList(d, units)), h("td", { class: "small" }, d.last_ok_at ? clock(d.last_ok_at) : t("never")),
            h("td", { class: "small error" }, d.last_error))))));
    }));
}

function chartSection(devices, units, preferred) {
  const state = ui.chart;
  if (!state.device && preferred) Object.assign(state, { device: preferred.device, point: preferred.point });
  const withValues = devices.filter((d) => Object.keys(d.values).length);
  if (!withValues.length) return h("section", { class: "history" }, h("h2", {}, t("history")), h("p", { class: "muted" }, t("no_data")));
  let device = withValues.find((d) => d.id === state.device) ?? withValues[0];
  const points = Object.keys(device.values);
  const point = points.includes(state.point) ? state.point : points[0];
  Object.assign(state, { device: device.id, point, range: state.range ?? "range_1h" });
  const plot = h("div", { id: "chart", class: "chart" });
  const note = h("p", { class: "muted small" });
  const redraw = async () => {
    device = devices.find((d) => d.id === state.device);
    const fromHub = await drawChart(plot, ui.caps, device, state.point, RANGES[state.range], units[`${device.id}|${state.point}`]);
    note.textContent = fromHub ? "" : t("history_live");
  };
  const select = (options, value, onchange, cls) => h("select", { class: cls, onchange },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  const controls = h("div", { class: "controls" },
    select(withValues.map((d) => [d.id, d.id]), state.device, (e) => {
      state.device = e.target.value;
      state.point = Object.keys(devices.find((d) => d.id === state.device).values)[0];
      refresh();
    }, "chart-device"),
    select(points.map((p) => [p, p]), state.point, (e) => { state.point = e.target.value; redraw(); }, "chart-point"),
    ui.caps.series ? select(Object.keys(RANGES).map((r) => [r, t(r)]), state.range, (e) => { state.range = e.target.value; redraw(); }, "chart-range") : null);
  setTimeout(redraw, 0); // once the section is laid out, so the chart takes its width
  return h("section", { class: "history" }, h("h2", {}, t("history")), controls, note, plot);
}

async function schoolView(id) {
  let school;
  try {
    school = await get(`/api/v1/schools/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return [h("p", {}, t("school_not_found"), `: ${id}`)];
    throw error;
  }
  const query = `school_id=${encodeURIComponent(id)}`;
  const [devices, alerts] = await Promise.all([get(`/api/v1/devices?${query}`), get(`/api/v1/alerts?state=active&${query}`)]);
  recordLive(devices.data);
  const units = {};
  const gateway = school.gateway;
  const rooms = roomsSection(devices.data, units);
  return [
    h("nav", { class: "crumbs" }, h("a", { href: "#/" }, `${t("city")} ${school.city_id}`), " › ", school.district.name || school.district.id, " › ", school.name),
    h("section", { class: `school-head status-${school.status}`, id: "school", dataset: { school: school.id, status: school.status } },
      h("h1", {}, h("span", { class: `dot dot-${school.status}` }), ` ${school.name || school.id} `, statusBadge(school.status)),
      h("dl", {},
        h("dt", {}, t("gateway")), h("dd", {}, gateway ? [gateway.id, " ", statusBadge(gateway.status)] : t("never")),
        h("dt", {}, t("last_seen")), h("dd", {}, gateway?.last_seen_at ? clock(gateway.last_seen_at) : t("never")),
        h("dt", {}, t("devices")), h("dd", {}, `${school.devices.online}/${school.devices.total} ${t("devices_online")}`))),
    h("section", { class: "active-alerts" }, h("h2", {}, t("active_alerts")), alertsTable(alerts.data, { [school.id]: school.name })),
    rooms,
    chartSection(devices.data, units, alerts.data[0]),
    await kpiSection(`level=school&id=${encodeURIComponent(school.id)}`),
  ];
}

// ---- routing, refresh and live updates ------------------------------------------------------

let rendering = null;

async function render() {
  const [, page, arg] = location.hash.split("/");
  const build = page === "school" && arg ? () => schoolView(decodeURIComponent(arg))
    : page === "alerts" ? alertsView : cityView;
  try {
    const nodes = await build();
    view().replaceChildren(...nodes);
    view().dataset.page = page || "city";
    document.getElementById("updated").textContent = t("updated", { t: clock(new Date().toISOString()) });
    banner(null);
  } catch (error) {
    banner(error instanceof ApiError && error.status === 401 ? t("login_required") : t("load_failed", { e: error.message }));
  }
}

/** Re-render, never two at once (a refresh asked for meanwhile runs right after). */
async function refresh() {
  if (rendering) { rendering.again = true; return rendering.done; }
  rendering = { again: false };
  rendering.done = (async () => {
    do { rendering.again = false; await render(); } while (rendering.again);
    rendering = null;
  })();
  return rendering.done;
}

let streamOpen = false;

function showLiveMode() {
  const live = document.getElementById("live");
  live.textContent = streamOpen ? `● ${t("live_stream")}` : t("live_poll", { s: ui.caps.stream ? 30 : POLL_S });
  live.className = streamOpen ? "live on" : "live";
}

function startLiveUpdates() {
  if (ui.caps.stream) {
    const source = new EventSource(ui.caps.stream);
    let pending = null;
    source.onmessage = () => { pending ??= setTimeout(() => { pending = null; refresh(); }, 500); };
    source.onopen = () => { streamOpen = true; showLiveMode(); };
    source.onerror = () => { streamOpen = false; showLiveMode(); };
    setInterval(refresh, 30_000);
  } else {
    setInterval(refresh, POLL_S * 1000);
  }
  showLiveMode();
}

function showUser() {
  const { username, role } = ui.me;
  document.getElementById("user").textContent = `${username} · ${t(`role_${role}`, {}, role)}`;
}

function applyLanguage() {
  translate();
  document.title = t("title");
  document.getElementById("lang").textContent = t("lang_switch");
  if (ui.caps) showLiveMode();
  if (ui.me) showUser();
}

async function main() {
  applyLanguage();
  document.getElementById("lang").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    applyLanguage();
    refresh();
  });
  [ui.me, ui.caps] = await Promise.all([get("/api/v1/auth/me"), loadCapabilities()]);
  showUser();
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => { ui.chart = {}; refresh(); });
  startLiveUpdates();
  await refresh();
  document.body.dataset.ready = "true";
}

setLanguage(language());
main();
