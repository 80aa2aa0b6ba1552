// Live updates: the hub's event stream (GET /api/v1/stream, server-sent alert transitions and
// status changes) re-renders the page as things happen; latest values, which the stream does not
// carry, are re-read every VALUES_S. While the stream is down, the page polls every ``pollS``.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const VALUES_S = 15;
const SETTLE_MS = 300; // a burst of events (a school going offline with its devices) is one refresh

export class LiveUpdates {
  /** ``refresh`` re-renders the page; ``pollS`` is the polling period without the stream. */
  constructor(refresh, pollS) {
    this.refresh = refresh;
    this.pollS = pollS;
    this.streaming = false;
    this.events = 0;
    this.pending = null;
    this.timer = null;
  }

  start() {
    const source = new EventSource("/api/v1/stream");
    source.onopen = () => { this.streaming = true; this.show(); this.soon(); }; // catch up after a gap
    source.onerror = () => { this.streaming = false; this.show(); this.schedule(); }; // it reconnects itself
    source.onmessage = () => {
      this.events += 1;
      document.getElementById("live").dataset.events = String(this.events);
      this.soon();
    };
    this.schedule();
    this.show();
  }

  /** Refresh shortly (once for a burst of events). */
  soon() {
    this.pending ??= setTimeout(() => { this.pending = null; this.run(); }, SETTLE_MS);
  }

  async run() {
    clearTimeout(this.timer);
    await this.refresh();
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), (this.streaming ? VALUES_S : this.pollS) * 1000);
  }

  show() {
    const el = document.getElementById("live");
    el.replaceChildren(this.streaming ? h("span", {}, `● ${t("live_stream")}`) : t("live_poll", { s: this.pollS }));
    el.className = this.streaming ? "live on" : "live";
    el.dataset.mode = this.streaming ? "stream" : "poll";
    el.dataset.events = String(this.events);
  }
}
