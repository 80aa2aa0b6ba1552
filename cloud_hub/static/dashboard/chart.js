// History of any point over a chosen range, downsampled by the hub
// (GET /api/v1/devices/{id}/series: min, max and mean per bucket), drawn with the vendored uPlot
// (global ``uPlot`` from uPlot.iife.min.js): the mean as a line inside its min-max band.
import { getWith } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const RANGES = { range_1h: 3600, range_6h: 6 * 3600, range_24h: 86400, range_7d: 7 * 86400, range_30d: 30 * 86400 };
const CUSTOM = "range_custom";
const BUCKETS = 300;

const keyOf = (device) => `${device.gateway_id}/${device.id}`;

/** ``datetime-local`` input value of a Date, in local time. */
function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

function select(cls, options, value, onchange) {
  return h("select", { class: cls, onchange },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

/** The history section of a school page; ``update(devices)`` keeps the choice across refreshes. */
export class HistoryChart {
  constructor() {
    this.choice = { device: null, point: null, range: "range_1h", from: null, to: null };
    this.devices = [];
    this.signature = "";
    this.controls = h("div", { class: "controls" });
    this.note = h("p", { class: "muted small chart-note" });
    this.plot = h("div", { id: "chart", class: "chart" });
    this.title = h("h2");
    this.element = h("section", { class: "history" }, this.title, this.controls, this.note, this.plot);
  }

  /** Show ``point`` of ``device`` unless the user already chose something still on the page. */
  prefer(device, point) {
    if (!this.choice.device) Object.assign(this.choice, { device, point });
  }

  update(devices) {
    this.title.textContent = t("history");
    this.devices = devices.filter((d) => Object.keys(d.values).length);
    const device = this.devices.find((d) => keyOf(d) === this.choice.device || d.id === this.choice.device) ?? this.devices[0];
    if (!device) {
      this.controls.replaceChildren();
      this.plot.replaceChildren();
      this.note.textContent = t("no_data");
      return;
    }
    const points = Object.keys(device.values);
    Object.assign(this.choice, { device: keyOf(device), point: points.includes(this.choice.point) ? this.choice.point : points[0] });
    // rebuilt only when something they show changed, so a refresh never resets what the user edits
    const signature = () => JSON.stringify([this.devices.map(keyOf), points, this.choice, document.documentElement.lang]);
    if (signature() !== this.signature) {
      this.buildControls(points);
      this.signature = signature();
    }
    return this.draw();
  }

  buildControls(points) {
    const c = this.choice;
    const changed = (field) => (event) => { c[field] = event.target.value; this.update(this.devices); };
    const custom = c.range === CUSTOM;
    if (custom && !c.from) Object.assign(c, { from: localInput(new Date(Date.now() - 86400_000)), to: localInput(new Date()) });
    const inputs = custom ? [
      h("label", { class: "small" }, t("from"), " ", h("input", { type: "datetime-local", class: "chart-from", value: c.from, onchange: changed("from") })),
      h("label", { class: "small" }, t("to"), " ", h("input", { type: "datetime-local", class: "chart-to", value: c.to, onchange: changed("to") })),
    ] : [];
    this.controls.replaceChildren(
      select("chart-device", this.devices.map((d) => [keyOf(d), d.id]), c.device, (event) => {
        c.device = event.target.value;
        c.point = null;
        this.update(this.devices);
      }),
      select("chart-point", points.map((p) => [p, p]), c.point, changed("point")),
      select("chart-range", [...Object.keys(RANGES), CUSTOM].map((r) => [r, t(r)]), c.range, changed("range")),
      ...inputs);
  }

  /** The range chosen: a preset ending now, or the custom from / to. */
  span() {
    const c = this.choice;
    if (c.range === CUSTOM) return [new Date(c.from), new Date(c.to)];
    const until = new Date();
    return [new Date(until.getTime() - RANGES[c.range] * 1000), until];
  }

  async draw() {
    const device = this.devices.find((d) => keyOf(d) === this.choice.device);
    const { point } = this.choice;
    const [since, until] = this.span();
    if (!(since < until)) {
      this.note.textContent = t("range_invalid");
      return;
    }
    let body;
    try {
      body = await getWith(`/api/v1/devices/${encodeURIComponent(device.id)}/series`, {
        point, from: since.toISOString(), to: until.toISOString(), buckets: BUCKETS, gateway_id: device.gateway_id,
      });
    } catch (error) {
      this.note.textContent = t("history_failed", { e: error.message });
      return;
    }
    const xs = body.data.map((b) => Date.parse(b.t) / 1000);
    const unit = body.unit ? ` (${body.unit})` : "";
    this.note.textContent = body.data.length
      ? t("history_buckets", { n: body.data.length, s: Math.round(body.bucket_s) })
      : t("history_empty");
    this.plot.replaceChildren();
    const width = Math.max(280, this.plot.clientWidth || 600);
    // eslint-disable-next-line no-undef
    new uPlot({
      width,
      height: 260,
      scales: { x: { time: true, range: [since.getTime() / 1000, until.getTime() / 1000] } },
      series: [
        {},
        { label: `${point} ${t("mean")}${unit}`, stroke: "#1565c0", width: 2, points: { show: xs.length < 60 } },
        { label: t("min"), stroke: "#90caf9", width: 1 },
        { label: t("max"), stroke: "#90caf9", width: 1 },
      ],
      bands: [{ series: [3, 2], fill: "rgba(21, 101, 192, 0.12)" }],
      axes: [{}, { size: 60 }],
    }, [xs, body.data.map((b) => b.mean), body.data.map((b) => b.min), body.data.map((b) => b.max)], this.plot);
    Object.assign(this.plot.dataset, { points: String(xs.length), bucket: String(body.bucket_s), point, device: device.id, range: this.choice.range });
  }
}
