// The hub's REST API as the dashboard uses it. Which optional routes exist (alert actions,
// history series, KPIs, the event stream) is read once from /openapi.json, so a view whose route
// this hub does not serve says "not available" instead of failing.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // not signed in, or the token expired or was revoked: sign in, then come back to /
    location.href = "/login";
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

/** Revoke this session's token, then go to the sign-in page. */
export async function signOut() {
  try { await post("/api/v1/auth/logout"); } finally { location.href = "/login"; }
}

/** Paths and their operations from the OpenAPI document (empty if it cannot be read). */
export async function loadCapabilities() {
  let paths = {};
  try { paths = (await get("/openapi.json")).paths ?? {}; } catch { /* keep empty */ }
  const find = (re, method) =>
    Object.keys(paths).find((p) => re.test(p) && (!method || paths[p][method])) ?? null;
  const series = find(/^\/api\/v1\/devices\/\{[^}]+\}\/series$/, "get");
  return {
    ack: find(/^\/api\/v1\/alerts\/\{[^}]+\}\/(ack|acknowledge)$/, "post"),
    resolve: find(/^\/api\/v1\/alerts\/\{[^}]+\}\/resolve$/, "post"),
    series,
    seriesParams: series ? (paths[series].get.parameters ?? []).map((p) => p.name) : [],
    kpis: find(/^\/api\/v1\/kpis$/, "get"),
    stream: find(/^\/api\/v1\/stream$/, "get"),
  };
}

/** ``template`` such as /api/v1/alerts/{alert_id}/ack with its one placeholder filled. */
export function fill(template, value) {
  return template.replace(/\{[^}]+\}/, encodeURIComponent(value));
}
