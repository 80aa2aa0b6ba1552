// The coloured marks every view shares: a status and an alert level (红/橙/黄/蓝 by default).
import { h } from "./dom.js";
import { t } from "./i18n.js";

export const LEVELS = ["I", "II", "III", "IV"];

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, dataset: { status } }, t(status));
}

export function levelBadge(severity) {
  return h("span", { class: `level level-${severity}`, title: t(`level_${severity}_long`) }, t(`level_${severity}`));
}

/** The most severe level among ``alerts`` (I is the highest), or null. */
export function topLevel(alerts) {
  return LEVELS.find((level) => alerts.some((a) => a.severity === level)) ?? null;
}
