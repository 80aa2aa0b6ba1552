// The operations dashboard: routes #/ (city), #/alerts and #/school/<id>. Pages re-render on
// every event of the hub's stream and poll while it is down (``?poll=S`` sets that period). The
// header says which tier the hub is (GET /api/v1/tier): a central hub shows what its regional hubs
// report, and its alerts are acted on at their regional hub.
import { ApiError, get, signOut } from "./api.js";
import { alertContext } from "./alerts.js";
import { alertsView, cityView } from "./city.js";
import { clock } from "./dom.js";
import { language, setLanguage, t, translate } from "./i18n.js";
import { LiveUpdates } from "./live.js";
import { forgetChart, schoolView } from "./school.js";

const POLL_S = Number(new URLSearchParams(location.search).get("poll")) || 5;

let me = null;
let tier = null;
let live = null;

function banner(message) {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.textContent = message ?? "";
}

async function render() {
  const [, page, arg] = location.hash.split("/");
  const build = page === "school" && arg ? () => schoolView(decodeURIComponent(arg))
    : page === "alerts" ? alertsView : cityView;
  try {
    const [nodes] = await Promise.all([build(), showTier()]);
    const view = document.getElementById("view");
    view.replaceChildren(...nodes);
    view.dataset.page = page || "city";
    document.getElementById("updated").textContent = t("updated", { t: clock(new Date().toISOString()) });
    banner(null);
  } catch (error) {
    banner(error instanceof ApiError && error.status === 401 ? t("login_required") : t("load_failed", { e: error.message }));
  }
}

let rendering = null;

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

function showUser() {
  document.getElementById("user").textContent = `${me.username} · ${t(`role_${me.role}`, {}, me.role)}`;
}

async function showTier() {
  tier = await get("/api/v1/tier");
  const el = document.getElementById("tier");
  el.dataset.role = tier.role;
  el.textContent = tier.role === "central"
    ? t("tier_central", { n: tier.schools, hubs: tier.regional_hubs.length })
      + (tier.regional_hubs_offline ? ` · ${t("tier_hubs_offline", { n: tier.regional_hubs_offline })}` : "")
    : t("tier_regional", { n: tier.schools });
}

function applyLanguage() {
  translate();
  document.title = t("title");
  document.getElementById("lang").textContent = t("lang_switch");
  if (me) showUser();
  live?.show();
}

async function main() {
  applyLanguage();
  document.getElementById("lang").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    applyLanguage();
    refresh();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  me = await get("/api/v1/auth/me");
  showUser();
  await showTier();
  Object.assign(alertContext, { mayAct: me.may_act && tier.role !== "central", onChanged: refresh });
  window.addEventListener("hashchange", () => { forgetChart(); refresh(); });
  live = new LiveUpdates(refresh, POLL_S);
  live.start();
  await refresh();
  document.body.dataset.ready = "true";
}

setLanguage(language());
main();
