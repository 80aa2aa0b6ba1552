// History charts with the vendored uPlot (global ``uPlot`` from uPlot.iife.min.js).
import { fill, get } from "./api.js";

export const RANGES = { range_1h: 3600, range_6h: 6 * 3600, range_24h: 86400, range_7d: 7 * 86400 };
const MAX_POINTS = 300;

/** Samples of every device point seen by polling since the page opened: the fallback history. */
const live = new Map();

export function recordLive(devices) {
  for (const device of devices) {
    for (const [point, v] of Object.entries(device.values)) {
      const key = `${device.id}|${point}`;
      const samples = live.get(key) ?? [];
      const t = Date.parse(v.at) / 1000;
      if (!samples.length || samples[samples.length - 1][0] < t) samples.push([t, v.value]);
      if (samples.length > 2000) samples.shift();
      live.set(key, samples);
    }
  }
}

/** The series route's query for one point over the last ``seconds`` (names read from OpenAPI). */
function seriesQuery(names, point, seconds) {
  const now = new Date();
  const since = new Date(now.getTime() - seconds * 1000).toISOString();
  const query = new URLSearchParams();
  const pick = (...options) => options.find((n) => names.includes(n));
  const set = (name, value) => { if (name) query.set(name, value); };
  set(pick("point", "points"), point);
  set(pick("from", "start", "since"), since);
  set(pick("to", "end", "until"), now.toISOString());
  set(pick("max_points", "buckets", "limit"), String(MAX_POINTS));
  return query.toString();
}

/** [[t seconds], [value]] from the shapes a series route may answer with. */
function toColumns(body, point) {
  const rows = Array.isArray(body) ? body : body.data ?? body.points ?? body.series?.[point] ?? [];
  if (!Array.isArray(rows) && Array.isArray(body.t)) return [body.t, body.v];
  const xs = [];
  const ys = [];
  for (const row of rows) {
    const at = row.t ?? row.at ?? row.time ?? row.bucket ?? row.window_start ?? row.start;
    const value = row.v ?? row.value ?? row.mean ?? row.avg ?? row.last;
    if (at === undefined || value === undefined || (row.point && row.point !== point)) continue;
    xs.push(typeof at === "number" ? at : Date.parse(at) / 1000);
    ys.push(value);
  }
  return [xs, ys];
}

/** Draw ``point`` of ``device`` into ``container``; returns whether hub history was used. */
export async function drawChart(container, caps, device, point, seconds, unit) {
  let columns = null;
  let fromHub = false;
  if (caps.series) {
    try {
      const path = `${fill(caps.series, device.id)}?${seriesQuery(caps.seriesParams, point, seconds)}`;
      columns = toColumns(await get(path), point);
      fromHub = true;
    } catch { columns = null; }
  }
  if (!columns) {
    const samples = live.get(`${device.id}|${point}`) ?? [];
    columns = [samples.map((s) => s[0]), samples.map((s) => s[1])];
  }
  container.replaceChildren();
  const width = Math.max(280, container.clientWidth || 600);
  // one sample alone would stretch the time axis over years: show a minute either side of it
  const lone = columns[0].length === 1 ? columns[0][0] : null;
  // eslint-disable-next-line no-undef
  new uPlot({
    width,
    height: 260,
    scales: { x: lone === null ? { time: true } : { time: true, range: [lone - 60, lone + 60] } },
    series: [{}, { label: unit ? `${point} (${unit})` : point, stroke: "#1565c0", width: 2, points: { show: columns[0].length < 60 } }],
    axes: [{}, { size: 60 }],
  }, columns, container);
  container.dataset.points = String(columns[0].length);
  container.dataset.source = fromHub ? "hub" : "live";
  return fromHub;
}
