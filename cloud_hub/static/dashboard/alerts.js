// Active alerts: a table with each alert's level, state and who took it on, and the acknowledge /
// resolve actions (POST /api/v1/alerts/{id}/ack|resolve with a comment) for roles that may act.
import { ApiError, changeAlert } from "./api.js";
import { levelBadge } from "./badges.js";
import { clock, h, num } from "./dom.js";
import { t } from "./i18n.js";

const COMMENT_MAX = 500; // the hub's limit for a comment

/** What the table needs: may the user act, and what to do once an alert changed. */
export const alertContext = { mayAct: false, onChanged: async () => {} };

function stateCell(alert) {
  const lines = [h("span", { class: `state state-${alert.state}` }, t(`state_${alert.state}`))];
  if (alert.acknowledged_by) lines.push(h("div", { class: "muted small" }, `${alert.acknowledged_by} · ${clock(alert.acknowledged_at)}`));
  if (alert.cleared_at) lines.push(h("div", { class: "muted small" }, t("cleared_at", { t: clock(alert.cleared_at) })));
  if (alert.occurrences > 1) lines.push(h("div", { class: "muted small" }, t("occurrences", { n: alert.occurrences })));
  if (alert.escalated_at) lines.push(h("div", { class: "small escalated" }, t("escalated_to", { tier: t(`tier_${alert.escalated_to}`) })));
  return h("td", { class: "state-cell" }, lines, actions(alert));
}

function actions(alert) {
  if (!alertContext.mayAct) return h("div", { class: "actions muted read-only" }, t("read_only"));
  const button = (action) => h("button", { type: "button", class: action, onclick: () => askAndChange(alert, action) }, t(action));
  return h("div", { class: "actions" }, alert.state === "open" ? button("ack") : null, button("resolve"));
}

/** The table of ``alerts``; ``schoolNames`` maps school ids to the names shown. */
export function alertsTable(alerts, schoolNames) {
  if (!alerts.length) return h("p", { class: "muted empty-alerts" }, t("no_alerts"));
  const head = ["level", "school", "device", "value", "message", "opened", "state"];
  return h("table", { class: "alerts" },
    h("thead", {}, h("tr", {}, head.map((k) => h("th", {}, t(k))))),
    h("tbody", {}, alerts.map((a) => h("tr", { class: `alert level-row-${a.severity}`, dataset: { alert: a.id, level: a.severity, state: a.state, device: a.device } },
      h("td", {}, levelBadge(a.severity)),
      h("td", {}, a.school_id ? h("a", { href: `#/school/${encodeURIComponent(a.school_id)}` }, schoolNames[a.school_id] || a.school_id) : ""),
      h("td", { class: "device-point" }, a.device, a.point ? h("div", { class: "muted small" }, a.point) : null),
      h("td", { class: "num" }, a.value === undefined ? "" : `${num(a.value)} / ${num(a.threshold)}`),
      h("td", {}, a.message, a.standard ? h("div", { class: "muted small" }, a.standard) : null),
      h("td", {}, clock(a.opened_at)),
      stateCell(a)))));
}

// ---- the acknowledge / resolve dialog -------------------------------------------------------

let dialog = null;

function buildDialog() {
  const el = h("dialog", { id: "alert-dialog", class: "alert-dialog" },
    h("form", { method: "dialog" },
      h("h3", { class: "title" }),
      h("p", { class: "summary" }),
      h("label", {}, h("span", { class: "comment-label" }), h("textarea", { name: "comment", rows: 3, maxlength: COMMENT_MAX })),
      h("p", { class: "error", hidden: true }),
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "cancel", onclick: () => el.close() }),
        h("button", { type: "submit", class: "confirm" }))));
  document.body.append(el);
  return el;
}

/** Open the dialog for ``action`` ("ack" or "resolve") on ``alert``; on confirm, send it. */
function askAndChange(alert, action) {
  dialog ??= buildDialog();
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".error");
  dialog.dataset.action = action;
  dialog.querySelector(".title").textContent = t(`${action}_title`, { id: alert.id });
  dialog.querySelector(".summary").replaceChildren(levelBadge(alert.severity), ` ${alert.device} · ${alert.point}: ${alert.message}`);
  dialog.querySelector(".comment-label").textContent = t("comment");
  dialog.querySelector(".cancel").textContent = t("cancel");
  dialog.querySelector(".confirm").textContent = t(action);
  form.comment.value = "";
  error.hidden = true;
  form.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await changeAlert(alert.id, action, form.comment.value.trim());
    } catch (failure) {
      error.hidden = false;
      error.textContent = failure instanceof ApiError && failure.status === 403 ? t("forbidden")
        : failure instanceof ApiError && failure.status === 409 ? t("changed_meanwhile", { e: failure.message })
          : failure.message;
      if (failure instanceof ApiError && failure.status === 409) await alertContext.onChanged();
      return;
    }
    dialog.close();
    await alertContext.onChanged();
  };
  dialog.showModal();
  form.comment.focus();
}
